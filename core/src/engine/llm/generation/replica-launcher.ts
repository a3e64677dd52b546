import { stat } from 'node:fs/promises';
import { freemem } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { NucleusError, toNucleusError, unavailable, type Logger, type ReplicaRouter } from '@nucleus/sdk';
import { sha256FileCached } from '@nucleus/sdk/llm';
import { BackendSelector, CPU_BACKEND, workerBackendSpec } from '../../backend-selector.js';

import { withDefaultCpu } from '../../default-cpu-backend.js';
import { defaultModelCacheDir } from '../../model-cache-dir.js';
import { CachedReading } from '../../workers/cached-reading.js';
import { withoutPaths } from '../../../server/without-paths.js';
import { isolationFor, replicasFor, sharesThread } from '../../workers/isolation-for.js';
import { FREE_MEMORY_MAX_AGE_MS } from '../../workers/worker-pool.js';
import type { GenerationEngineOptions } from './generation-engine-options.js';
import type { PrefixCacheSpec, SpeculativeSpec } from './generation-messages.js';
import { warmupRuns } from '../../warmup-runs.js';
import { warmUp } from './generation-lifecycle.js';
import { GenerationReplicas } from './generation-replicas.js';
import {
  GenerationWorkerClient,
  sharedGenerationThread,
  type GenerationThreadReady,
  type SharedGenerationThread,
} from './generation-worker-client.js';
import { toWireGenerate } from './request-schema.js';
import type { SchedulerSettings } from './scheduler.js';
import {
  backendKey,
  modelKey,
  type ConfiguredLlm,
  type LlmModelSpec,
  type ModelSpec,
  type ServedModel,
} from './served-model.js';

/** Tokens of the greedy generation an LLM warms up with: enough to run a prefill and decode steps. */
const WARMUP_TOKENS = 4;

/**
 * Opens the replicas of served models: picks the backend, has the model's format prepare its graph, and starts one
 * worker per replica with the scheduler, prefix-cache and speculation settings the config gives; then keeps the
 * running replicas in step with the config and with memory pressure.
 */
export class ReplicaLauncher {
  readonly #selector: BackendSelector;
  readonly #log: Logger;
  /** The host's free memory for routing, read at most every {@link FREE_MEMORY_MAX_AGE_MS} (a request is routed per read). */
  readonly #hostFree = new CachedReading(freemem, FREE_MEMORY_MAX_AGE_MS);
  /** The worker thread small models share (`workers.shareBelowBytes`). */
  readonly #shared: SharedGenerationThread;

  /** `models`: the models served now; `stopped`: whether the engine is stopping (a replica that opens then closes). */
  constructor(
    private readonly options: GenerationEngineOptions,
    logger: Logger,
    private readonly models: () => Iterable<ServedModel>,
    private readonly stopped: () => boolean,
  ) {
    this.#log = logger;
    this.#selector = new BackendSelector(withDefaultCpu(options.backends), { events: options.events, logger });
    this.#shared = sharedGenerationThread({ niceness: () => options.config.get('workers.niceness'), logger });
  }

  /** Follows the config's and memory pressure's changes in the running replicas until the returned function is called. */
  watch(): () => void {
    const offConfig = this.options.config.onChange?.((path, value, previous) => {
      if (path === 'models') this.#entriesChanged(previous, value);
      if (path.startsWith('scheduler.')) for (const w of this.#workers()) w.configure(this.#schedulerSettings());
      if (path === 'cache.prefix.maxBytes') {
        for (const m of this.models()) {
          if (m.cacheBytes === undefined) continue;
          m.cacheBytes = this.#prefixCacheBytes(m);
          for (const w of m.replicas?.all ?? []) w.configurePrefixCache(this.#shrink(m.cacheBytes));
        }
      }
      // Replicas follow `workers.perModel` while serving: added ones open first, retired ones finish their generations.
      if (path === 'workers.perModel' || path === 'workers' || path === 'models') {
        for (const m of this.models()) {
          if (m.kind !== 'llm' || !m.replicas) continue;
          m.replicas
            .resize(this.replicaCount(m))
            .catch((err: unknown) =>
              this.#log.error({ model: m.name, err: (err as Error).message }, 'replicas could not be resized'),
            );
        }
      }
    });
    // Pressure starting or ending reaches running workers at once: fewer sequences per step, a smaller cache.
    const offMemory = this.options.memory?.onChange(() => {
      for (const m of this.models()) {
        for (const w of m.replicas?.all ?? []) {
          w.configure(this.#schedulerSettings());
          if (m.cacheBytes !== undefined) w.configurePrefixCache(this.#shrink(m.cacheBytes));
        }
      }
    });
    return () => {
      offConfig?.();
      offMemory?.();
    };
  }

  // A model whose `models[]` entry changed is tried again on its next request, whatever its back-off said: the change
  // may be the fix (the lifecycle plugin, when active, swaps it to the new entry at once anyway).
  #entriesChanged(previous: unknown, next: unknown): void {
    const entry = (list: unknown, m: ServedModel): string | undefined => {
      const found = (Array.isArray(list) ? (list as ConfiguredLlm[]) : []).find(
        (e) => e.name === m.name && (e.version ?? '1') === m.version,
      );
      return found && JSON.stringify(found);
    };
    for (const m of this.models()) {
      if (m.origin !== 'config' || m.loadBackoff.failures === 0) continue;
      if (entry(previous, m) !== entry(next, m)) {
        m.loadBackoff.reset();
        this.#log.info({ model: m.name }, 'its config entry changed: the next request tries the load again');
      }
    }
  }

  /**
   * Opens a model's replicas (its state, events and `/ready` follow); 503 `model_unavailable` saying why it failed and
   * when a request may try again (its back-off).
   */
  async open(model: ServedModel): Promise<GenerationReplicas> {
    model.state = 'loading';
    this.options.events.emit('model.loading', { model: model.name, version: model.version });
    const started = performance.now();
    try {
      const speculative = this.#speculativeSpec(model.name, model.spec);
      const requested = model.backend ?? this.options.config.get('backend');
      const selection = await this.#selector.select(requested);
      const { draft, ...spec } = await model.prepare(selection.backend.name);
      if (speculative && draft) speculative.speculative.draft = draft;
      if (speculative?.needsDraftModel && !speculative.speculative.draft)
        throw new NucleusError(
          422,
          'draft_model_missing',
          `model '${model.name}' speculates with "${speculative.speculative.method}", which runs a draft model; name one with models[].speculation.draft, models[].speculation.draftLayers for the model's own first layers, or models[].speculation.draftQuantize for its own quantized weights`,
        );
      const persistence = spec.role === 'decoder' ? await this.#persistence(model, spec) : undefined;
      const cpu = this.#selector.find(CPU_BACKEND);
      const size = spec.role === 'decoder' ? this.replicaCount(model) : 1;
      const decoder = spec.decoder?.config;
      const isolation = model.spec?.isolation ?? isolationFor(this.options.config, model.name);
      // Its first replica shares the thread of small models, as a small tensor model does (added ones never do).
      const shared = sharesThread(this.options.config, {
        name: model.name,
        modelPath: spec.onnxPath,
        isolation,
        replicas: size,
      });
      // Each replica gets a spec of its own: runtime changes (scheduler, cache size) are written into it.
      const create = (
        id: number,
        reroute: (from: GenerationWorkerClient) => GenerationWorkerClient | undefined,
      ): GenerationWorkerClient =>
        new GenerationWorkerClient(
          {
            label: model.name,
            ...spec,
            ...workerBackendSpec(selection, requested, cpu),
            scheduler: this.#schedulerSettings(),
            flushIntervalMs: this.options.flushIntervalMs ?? 1,
            ...(spec.role === 'decoder' && this.#prefixCacheSpec(model, persistence?.(id))),
            ...(spec.role === 'decoder' && speculative && { speculative: speculative.speculative }),
            ...(this.options.faultInjection && { faultInjection: this.options.faultInjection }),
          },
          {
            id,
            reroute,
            logger: this.#log.child({ model: model.name, replica: id }),
            isolation,
            ...(shared && id === 0 && { shared: this.#shared }),
            heartbeatTimeoutMs: () => this.options.config.get('workers.heartbeatTimeoutMs'),
            niceness: () => this.options.config.get('workers.niceness'),
            maxConsecutiveRestarts: () => this.options.config.get('workers.maxRestarts'),
            onHealth: (health) => {
              this.options.events.emit('worker.health', { model: model.name, worker: id, ...health });
              if (health.healthy) model.replicas?.healthChanged();
            },
            observer: model.telemetry.observer(id),
          },
        );
      const replicas =
        model.replicas ??
        new GenerationReplicas(size, {
          create,
          logger: this.#log.child({ model: model.name }),
          routing: () => this.#routing(),
          freeMemoryBytes: () => (selection.backend.name === CPU_BACKEND ? this.#hostFree.read() : undefined),
          ...(decoder && {
            kvBytesPerToken:
              2 * decoder.numLayers * decoder.numKvHeads * decoder.headDim * (decoder.kvDtype === 'float16' ? 2 : 4),
            maxContext: decoder.maxContext,
          }),
        });
      model.replicas = replicas;
      const ready = await replicas.start();
      if (this.stopped()) {
        await replicas.close();
        throw unavailable('server_stopping', 'the server is shutting down');
      }
      if (ready.prefixCacheError !== undefined)
        this.#log.warn(
          { model: model.name, reason: ready.prefixCacheError },
          'prefix cache off: its cache policy could not be loaded in the worker',
        );
      this.#restored(model, replicas);
      // Injected faults are meant for the requests under test, not for the warm-up.
      if (spec.role === 'decoder' && !this.options.faultInjection) await this.#warmUp(model, replicas);
      model.maxContext = ready.maxContext;
      this.#backendChosen(model, requested, selection.backend.name, ready);
      if (ready.dimensions !== undefined) model.dimensions = ready.dimensions;
      model.state = 'ready';
      delete model.reason;
      model.loadBackoff.reset();
      this.options.health?.clear(modelKey(model.name, model.version));
      // The size may have changed while the model was loading.
      if (spec.role === 'decoder' && replicas.workers.length !== this.replicaCount(model)) {
        replicas
          .resize(this.replicaCount(model))
          .catch((err: unknown) =>
            this.#log.error({ model: model.name, err: (err as Error).message }, 'replicas could not be resized'),
          );
      }
      const durationMs = performance.now() - started;
      this.options.events.emit('model.loaded', {
        model: model.name,
        version: model.version,
        durationMs,
        backend: ready.backend,
      });
      this.#log.info(
        { model: model.name, backend: ready.backend, replicas: size, durationMs: Math.round(durationMs) },
        'generation model ready',
      );
      return replicas;
    } catch (err) {
      const error = toNucleusError(err);
      model.state = 'failed';
      model.reason = error.message;
      model.errorCode = error.code;
      model.replicas = undefined;
      delete model.running;
      this.options.health?.clear(backendKey(model.name, model.version));
      // Requests start loads: the next one waits (and its requests are refused) so that a broken or hostile file
      // costs one load per back-off, not one per request. Requests are told no path beyond the configured one.
      const retryInMs = model.loadBackoff.failed(withoutPaths(error.message, model.path));
      const retryAt = new Date(model.loadBackoff.retryAt).toISOString();
      // A configured model that cannot serve makes the server unready (only degraded when `optional`); a version
      // opened beside a serving one (a swap) changes nothing: the old one serves.
      if (model.origin === 'config') {
        const optional = this.options.config.get('models').find((m) => m.name === model.name)?.optional === true;
        this.options.health?.set({
          key: modelKey(model.name, model.version),
          severity: optional ? 'degraded' : 'unready',
          reason: `model '${model.name}' failed to load: ${error.message}; tried again on a request after ${retryAt}`,
        });
      }
      this.options.events.emit('model.failed', { model: model.name, version: model.version, error: error.message });
      this.#log.error(
        { model: model.name, err: error.message, failures: model.loadBackoff.failures, retryInMs, retryAt },
        'generation model failed to load',
      );
      throw model.loadBackoff.error(model.name, retryInMs);
    }
  }

  // A few greedy tokens on each replica before the model takes traffic, as `warmup` asks, so that
  // the first user does not pay for ORT's lazy initialisation, and a model that opens but cannot generate (a graph that
  // fails at its first step, a tokenizer that cannot encode) fails here, with its replicas closed.
  async #warmUp(model: ServedModel, replicas: GenerationReplicas): Promise<void> {
    // Loads and swaps at run time warm up unless told not to; at start, every model when `startup.warmUp` is on,
    // otherwise a configured model when its entry asks (`warmup`).
    const atStart = this.options.config.get('startup.warmUp') ? 1 : 0;
    const configured = model.spec
      ? warmupRuns(model.spec.warmup)
      : (this.options.config.get('models').find((m) => m.name === model.name)?.warmup ?? atStart);
    const runs = typeof configured === 'number' ? configured : warmupRuns(configured);
    const request = toWireGenerate({ model: model.name, prompt: 'Hello', maxTokens: WARMUP_TOKENS, temperature: 0 });
    try {
      for (let i = 0; i < runs; i++) await warmUp(replicas.workers, request);
    } catch (err) {
      await replicas.close();
      throw new NucleusError(422, 'warmup_failed', `its warm-up generation failed: ${toNucleusError(err).message}`);
    }
  }

  // The replica router `workers.llmRouting` names when a plugin contributes it; otherwise the replicas' own
  // least-busy choice.
  #routing(): ReplicaRouter | undefined {
    const name = this.options.config.get('workers.llmRouting');
    return this.options.replicaRouters?.find(name)?.value;
  }

  // The prefix cache of a new decoder thread, or nothing when it is off or no usable policy is contributed.
  #prefixCacheSpec(
    served: ServedModel,
    persist: PrefixCacheSpec['persist'],
  ): { prefixCache: PrefixCacheSpec } | undefined {
    const model = served.name;
    const { config } = this.options;
    if (!config.get('cache.prefix.enabled')) return undefined;
    const name = config.get('cache.prefix.policy');
    const policy = this.options.cachePolicies?.find(name)?.value;
    if (!policy) {
      const why = `no plugin contributes a cache policy named '${name}' (cache-lru provides 'lru')`;
      this.#log.warn({ model, reason: why }, 'prefix cache off');
      return undefined;
    }
    served.cacheBytes = this.#prefixCacheBytes(served);
    return {
      prefixCache: {
        maxBytes: this.#shrink(served.cacheBytes),
        blockTokens: config.get('cache.prefix.blockTokens'),
        policy: name,
        policyModule: policy.module,
        policyOptions: { ...policy.options },
        ...(persist && { persist }),
      },
    };
  }

  // With `cache.prefix.persist`: each replica's prefix-cache file, named by the model's sha256 and graph style (and the
  // replica), with what the file must have been written for. The source file's sha256 names the model (its graph's
  // when the source is a folder); the graph's sha256 also counts, since a rebuilt or rewritten graph computes other KV.
  async #persistence(
    model: ServedModel,
    spec: ModelSpec,
  ): Promise<((replica: number) => PrefixCacheSpec['persist']) | undefined> {
    const { config } = this.options;
    if (!config.get('cache.prefix.enabled') || !config.get('cache.prefix.persist') || !spec.decoder) return undefined;
    const cacheDir = this.options.cacheDir ?? defaultModelCacheDir();
    const graphSha256 = await sha256FileCached(spec.onnxPath, cacheDir);
    const source = model.path !== undefined && (await isFile(model.path)) ? model.path : undefined;
    const modelSha256 = source ? await sha256FileCached(source, cacheDir) : graphSha256;
    const graphStyle = spec.decoder.config.graphStyle;
    const blockTokens = config.get('cache.prefix.blockTokens');
    return (replica) => ({
      path: prefixCacheFile(cacheDir, modelSha256, graphStyle, replica),
      modelSha256,
      graphSha256,
      graphStyle,
      blockTokens,
    });
  }

  // What each replica made of its prefix-cache file, in the log.
  #restored(model: ServedModel, replicas: GenerationReplicas): void {
    for (const w of replicas.all) {
      const info = w.info;
      if (info?.prefixCacheRestored)
        this.#log.info({ model: model.name, replica: w.id, ...info.prefixCacheRestored }, 'prefix cache restored');
      if (info?.prefixCacheIgnored !== undefined)
        this.#log.warn(
          {
            model: model.name,
            replica: w.id,
            file: w.spec.prefixCache?.persist?.path,
            reason: info.prefixCacheIgnored,
          },
          'prefix cache file ignored; the cache starts empty',
        );
    }
  }

  // Speculative decoding of a new decoder thread, as `models[].speculative` names it; a name no plugin offers fails the load.
  #speculativeSpec(
    model: string,
    loaded?: LlmModelSpec,
  ): { speculative: SpeculativeSpec; needsDraftModel: boolean } | undefined {
    const configured = this.options.config.get('models');
    // A model loaded at run time has its own settings; the config's entry of that name is not its.
    const entry = loaded ? undefined : configured.find((m) => m.name === model);
    const speculation = entry?.speculation;
    const method =
      speculation?.method ??
      (speculation?.draft !== undefined ||
      speculation?.draftLayers !== undefined ||
      speculation?.draftQuantize !== undefined
        ? 'draft'
        : undefined) ??
      (loaded ? loaded.speculative : entry?.speculative);
    if (method === undefined) return undefined;
    const found = this.options.draftProposers?.find(method)?.value;
    if (!found) {
      const available = [...new Set((this.options.draftProposers?.list() ?? []).map((c) => c.name))].sort();
      throw new NucleusError(
        422,
        'speculative_method_unavailable',
        `model '${model}' asks for speculative "${method}", but no active plugin provides a speculative decoding method by that name ` +
          `(available: ${available.length > 0 ? available.join(', ') : 'none; the spec-decode plugin provides ngram'})`,
      );
    }
    const { module, options, maxBatch, autoOff } = found;
    const numSpeculativeTokens = speculation?.numSpeculativeTokens ?? found.numSpeculativeTokens;
    return {
      speculative: {
        method,
        module,
        options: { ...options },
        numSpeculativeTokens,
        maxBatch,
        ...(autoOff && { autoOff: { ...autoOff } }),
      },
      needsDraftModel: found.needsDraftModel === true,
    };
  }

  // `cache.prefix.maxBytes` for each replica, or by default 80% of the memory free now, shared by the LLMs served
  // and by this model's replicas.
  #prefixCacheBytes(model: ServedModel): number {
    const configured = this.options.config.get('cache.prefix.maxBytes');
    if (typeof configured === 'number') return configured;
    const llms = [...this.models()].filter((m) => m.kind === 'llm').length;
    return Math.floor((freemem() * 0.8) / Math.max(1, llms) / this.replicaCount(model));
  }

  // A size as it applies now: halved under memory pressure.
  #shrink(size: number): number {
    return this.options.memory?.shrink(size) ?? size;
  }

  #schedulerSettings(): SchedulerSettings {
    const { config } = this.options;
    const strategy = config.get('scheduler.strategy');
    return {
      maxRunning: this.#shrink(config.get('scheduler.maxRunning')),
      maxBatchSize: this.#shrink(config.get('scheduler.maxBatchSize')),
      batchWindowMs: config.get('scheduler.batchWindowMs'),
      // Strategies from plugins run on the main thread; inside the worker only these two exist.
      strategy: strategy === 'fifo' ? 'fifo' : 'priority',
    };
  }

  /** Its replicas: the run-time spec's `workers`, else `models[].workers` or `workers.perModel`. */
  replicaCount(model: ServedModel): number {
    return model.spec?.workers ?? replicasFor(this.options.config, model.name);
  }

  // Where the model's sessions run: like a tensor model's, a fallback from the backend asked for (by the selector, or
  // by ORT rejecting its provider) leaves /ready degraded with the reason under `backend:<model>@1`.
  #backendChosen(model: ServedModel, requested: string, selected: string, ready: GenerationThreadReady): void {
    const fallbackReason = ready.fallbackReason;
    model.running = { backend: ready.backend, requested, ...(fallbackReason !== undefined && { fallbackReason }) };
    if (ready.backend !== selected && fallbackReason !== undefined)
      this.#selector.reportFallback(requested, fallbackReason);
    const key = backendKey(model.name, model.version);
    if (fallbackReason !== undefined)
      this.options.health?.set({
        key,
        severity: 'degraded',
        reason: `model '${model.name}' version '1': ${fallbackReason}`,
      });
    else this.options.health?.clear(key);
  }

  #workers(): GenerationWorkerClient[] {
    return [...this.models()].flatMap((m) => m.replicas?.all ?? []);
  }
}

/** The file a replica's prefix cache is kept in between runs: `<cacheDir>/prefix-cache/<sha256>-<style>-r<replica>.nxpc`. */
export function prefixCacheFile(cacheDir: string, modelSha256: string, graphStyle: string, replica: number): string {
  return join(cacheDir, 'prefix-cache', `${modelSha256}-${graphStyle}-r${replica}.nxpc`);
}

async function isFile(path: string): Promise<boolean> {
  return stat(path).then(
    (s) => s.isFile(),
    () => false,
  );
}
