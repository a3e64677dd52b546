import type { ExtensionPointView, EventBus, Logger, ModelTransform, Progress, ReplicaRouter } from '@nucleus/sdk';
import type { ConfigStore } from '../kernel/config/index.js';
import { type BackendSelector, CPU_BACKEND, workerBackendSpec } from './backend-selector.js';
import type { BreakerState } from './circuit-breaker.js';
import { LoadedModel } from './loaded-model.js';
import type { MemoryPressure } from './memory-pressure.js';
import { defaultModelCacheDir } from './model-cache-dir.js';
import { readModelManifest, verifyChecksums, type ModelManifest } from './model-manifest.js';
import type { ModelSource } from './model-repository.js';
import { applyModelTransform } from './model-transforms.js';
import { isolationFor, replicasFor, sharesThread } from './workers/isolation-for.js';
import type { SharedSessionThread } from './workers/shared-session-thread.js';

/** What opening a version needs from the engine around it. */
export interface VersionOpenerOptions {
  config: Pick<ConfigStore, 'get'>;
  selector: BackendSelector;
  events: EventBus;
  logger: Logger;
  progress: () => Progress;
  transforms?: ExtensionPointView<ModelTransform>;
  cacheDir?: string;
  memory?: MemoryPressure;
  /** The router `workers.routing` names, read for each batch. */
  routing: () => ReplicaRouter | undefined;
  /** The worker thread small models share. */
  shared: SharedSessionThread;
  /** A version's circuit breaker opened or closed. */
  onBreaker: (name: string, version: string, state: BreakerState, reason: string) => void;
}

/**
 * Opens one model version from its source: reads and checks its manifest, applies `quantize`, picks the backend and
 * starts its workers (in the shared thread when it is small), with the batching, queue, breaker and worker settings
 * read live from the config.
 */
export async function openVersion(configured: ModelSource, o: VersionOpenerOptions): Promise<LoadedModel> {
  let source = configured;
  const { name, version } = source;
  const { config } = o;
  const manifest: ModelManifest = source.manifestPath ? await readModelManifest(source.manifestPath) : {};
  if (source.manifestPath) await verifyChecksums(source.modelPath, manifest, source.manifestPath, o.progress);
  // With `quantize`, the rewritten graph is what runs.
  if (source.options.quantize !== undefined) {
    const modelPath = await applyModelTransform({
      model: name,
      kind: 'tensor',
      path: source.modelPath,
      transform: source.options.quantize,
      transforms: o.transforms,
      cacheDir: o.cacheDir ?? defaultModelCacheDir(),
      logger: o.logger,
      progress: o.progress(),
    });
    source = { ...source, modelPath };
  }
  const requested = source.options.backend ?? config.get('backend');
  const selection = await o.selector.select(requested);
  const isolation = source.options.isolation ?? isolationFor(config, name);
  const replicas = replicasFor(config, name);
  const shared = sharesThread(config, { name, modelPath: source.modelPath, isolation, replicas });
  const model = await LoadedModel.open({
    source,
    manifest,
    ...workerBackendSpec(selection, requested, o.selector.find(CPU_BACKEND)),
    workers: replicas,
    routing: o.routing,
    defaults: () => ({
      maxBatchSize: config.get('batching.maxBatchSize'),
      maxQueueDelayMs: config.get('batching.maxQueueDelayMs'),
      maxQueued: config.get('queue.highWatermark'),
      reopenBelow: config.get('queue.lowWatermark'),
      queueTimeoutMs: config.get('queue.timeoutMs'),
      ...(o.memory && { shrinkBatchSize: (size: number) => o.memory!.shrink(size) }),
    }),
    logger: o.logger.child({ model: name, version }),
    events: o.events,
    breaker: {
      settings: () => ({
        failureThreshold: config.get('breaker.failureThreshold'),
        cooldownMs: config.get('breaker.cooldownMs'),
      }),
      onChange: (state, reason) => o.onBreaker(name, version, state, reason),
    },
    runTimeoutMs: () => config.get('workers.runTimeoutMs'),
    strictWarmup: source.origin === 'runtime',
    isolation,
    ...(shared && { shared: o.shared }),
    heartbeatTimeoutMs: () => config.get('workers.heartbeatTimeoutMs'),
    niceness: () => config.get('workers.niceness'),
    maxConsecutiveRestarts: () => config.get('workers.maxRestarts'),
  });
  // The size may have changed while the model was loading.
  if (model.pool.workers.length !== replicasFor(config, name)) void model.pool.resize(replicasFor(config, name));
  if (model.backend.rejected && model.backend.fallbackReason !== undefined)
    o.selector.reportFallback(requested, model.backend.fallbackReason);
  return model;
}
