import { performance } from 'node:perf_hooks';
import {
  allocateTensorData,
  badRequest,
  elementCount,
  isBigIntDataType,
  NucleusError,
  unavailable,
  type BatchingInfo,
  type BatchingUpdate,
  type EventBus,
  type Logger,
  type ModelVersionInfo,
  type ModelVersionState,
  type ReplicaRouter,
  type SessionOptions,
  type Tensor,
} from '@nucleus/sdk';
import { isAllocationFailure } from './allocation-failure.js';
import { BatchAssembler } from './batching/batch-assembler.js';
import { CircuitBreaker, type BreakerState } from './circuit-breaker.js';
import { DynamicBatcher, type BatchSettings, type SubmitOptions } from './batching/dynamic-batcher.js';
import type { ModelManifest } from './model-manifest.js';
import type { ModelSource } from './model-repository.js';
import { ModelSignature } from './model-signature.js';
import type { WorkerHealth } from './workers/worker-supervisor.js';
import type { WorkerIsolation } from './workers/worker-handle.js';
import { warmupRuns } from './warmup-runs.js';
import { WorkerPool } from './workers/worker-pool.js';
import type { SharedSessionThread } from './workers/shared-session-thread.js';

/** The settings a loaded model is opened with. */
export interface LoadedModelOptions {
  source: ModelSource;
  manifest: ModelManifest;
  /** The chosen backend and the session options it gave. */
  backend: { name: string; requested: string; options: SessionOptions; fallbackReason?: string };
  /** The CPU backend's options, to retry on when ORT rejects the chosen provider. */
  fallback?: { name: string; options: SessionOptions };
  /** Workers (sessions) for this version. */
  workers: number;
  /** Each worker a thread of this process (default) or a child process of its own. */
  isolation?: WorkerIsolation;
  /** A small model's one worker: open its session in this thread, shared with other small models. */
  shared?: SharedSessionThread;
  /** Process isolation: a worker process silent this long (ms) is frozen and killed. Read at each worker start. */
  heartbeatTimeoutMs?: () => number;
  niceness?: () => number;
  /** Restarts in a row after which a worker that dies again is given up (`workers.maxRestarts`), read at each death. */
  maxConsecutiveRestarts?: () => number;
  /** Global batching and queue settings, read per batch. */
  defaults: () => {
    maxBatchSize: number;
    maxQueueDelayMs: number;
    maxQueued: number;
    reopenBelow?: number;
    queueTimeoutMs: number;
    /** The batch size that applies now to a configured one (smaller under memory pressure). */
    shrinkBatchSize?(size: number): number;
  };
  logger: Logger;
  /** Receives `inference.end`, `batch.executed`, `queue.depth` and `worker.health`. */
  events?: Pick<EventBus, 'emit'>;
  /** The circuit breaker's settings (read on each use) and who hears its state changes. */
  breaker?: {
    settings(): { failureThreshold: number; cooldownMs: number };
    onChange?(state: BreakerState, reason: string): void;
  };
  /** A run taking longer than this marks its worker hung: it is replaced and the run fails (or is retried). 0: never. */
  runTimeoutMs?: () => number;
  /** The strategy that picks a replica for each batch (read per batch); none means the least busy. */
  routing?: () => ReplicaRouter | undefined;
  /**
   * A warm-up run that fails fails the open (a load or swap at run time, where the old version keeps serving and the
   * caller hears why); otherwise it is logged and the model serves, as a model found at start does.
   */
  strictWarmup?: boolean;
}

/** What the session reported about where it runs. */
export interface LoadedBackend {
  name: string;
  requested: string;
  fallbackReason?: string;
  /** True when ORT itself rejected the requested provider (as opposed to the selector choosing CPU). */
  rejected: boolean;
}

/**
 * One model version in service: its worker threads, its signature and its batcher. Requests are checked against
 * the signature, batched, and run off the event loop.
 */
export class LoadedModel {
  readonly label: string;
  readonly signature: ModelSignature;
  readonly backend: LoadedBackend;
  readonly #batching: Omit<BatchingInfo, 'maxBatchSize' | 'maxQueueDelayMs' | 'preferredBatchSizes'>;
  readonly #settings: () => BatchSettings;
  state: ModelVersionState = 'ready';
  readonly #pool: WorkerPool;
  readonly #batcher: DynamicBatcher;
  readonly #breaker: CircuitBreaker | undefined;
  #requests = 0;
  #failures = 0;
  #tuned: BatchingUpdate = {};
  #described: Omit<ModelVersionInfo, 'state' | 'reason' | 'batching' | 'status'> | undefined;

  private constructor(
    readonly options: LoadedModelOptions,
    pool: WorkerPool,
    signature: ModelSignature,
    backend: LoadedBackend,
  ) {
    const { source, manifest } = options;
    this.label = signature.label;
    this.#pool = pool;
    this.signature = signature;
    this.backend = backend;
    const batchable = signature.batchable();
    const configured = source.options.batching ?? manifest.batching?.enabled;
    const padding = signature.paddable();
    const usePadding = batchable.ok && (manifest.batching?.padding ?? padding.ok) && padding.ok;
    const enabled = batchable.ok && configured !== false;
    const configuredFixed = {
      maxBatchSize: source.options.maxBatchSize ?? manifest.batching?.maxBatchSize,
      maxQueueDelayMs: source.options.maxQueueDelayMs ?? manifest.batching?.maxQueueDelayMs,
    };
    const preferredBatchSizes = source.options.preferredBatchSizes ?? manifest.batching?.preferredBatchSizes ?? [];
    const settings = (): BatchSettings => {
      const d = options.defaults();
      // A run-time change (retune) wins over the model's configured settings, which win over the global ones.
      const fixed = {
        maxBatchSize: this.#tuned.maxBatchSize ?? configuredFixed.maxBatchSize,
        maxQueueDelayMs: this.#tuned.maxQueueDelayMs ?? configuredFixed.maxQueueDelayMs,
      };
      return {
        maxBatchSize: enabled
          ? (d.shrinkBatchSize?.(fixed.maxBatchSize ?? d.maxBatchSize) ?? fixed.maxBatchSize ?? d.maxBatchSize)
          : 1,
        maxQueueDelayMs: enabled ? (fixed.maxQueueDelayMs ?? d.maxQueueDelayMs) : 0,
        preferredBatchSizes: enabled ? preferredBatchSizes : [],
        maxQueued: d.maxQueued,
        ...(d.reopenBelow !== undefined && { reopenBelow: d.reopenBelow }),
        queueTimeoutMs: d.queueTimeoutMs,
      };
    };
    this.#settings = settings;
    this.#batching = {
      enabled,
      ...(!enabled && {
        reason: batchable.ok ? 'batching is switched off for this model' : `cannot batch: ${batchable.reason}`,
      }),
      padding: enabled && usePadding,
    };
    const ids = { model: source.name, version: source.version };
    const events = options.events;
    this.#breaker =
      options.breaker &&
      new CircuitBreaker({
        label: signature.label,
        settings: options.breaker.settings,
        ...(options.breaker.onChange && { onChange: options.breaker.onChange }),
      });
    this.#batcher = new DynamicBatcher({
      label: this.label,
      settings,
      assembler: new BatchAssembler(signature.inputs, signature.outputs, enabled && usePadding),
      run: (inputs) => this.#pool.run(inputs),
      concurrency: () => pool.workers.length,
      logger: options.logger,
      ...(events && {
        onBatch: (b: { size: number; paddingRatio: number; durationMs: number; requestIds: string[] }) =>
          events.emit('batch.executed', {
            ...ids,
            size: b.size,
            paddingRatio: b.paddingRatio,
            durationMs: b.durationMs,
            ...(b.requestIds.length > 0 && { requestIds: b.requestIds }),
          }),
        onDepth: (depth: number) => events.emit('queue.depth', { ...ids, priority: 'normal', depth }),
      }),
    });
  }

  /** Starts the workers, reads the signature from the session, and runs the warm-up; closes everything on failure. */
  static async open(options: LoadedModelOptions): Promise<LoadedModel> {
    const { source, manifest } = options;
    const label = `model '${source.name}' version '${source.version}'`;
    const pool = new WorkerPool(
      {
        label: `${source.name}@${source.version}`,
        modelPath: source.modelPath,
        backend: options.backend,
        ...(options.fallback && { fallback: options.fallback }),
      },
      options.workers,
      {
        logger: options.logger,
        ...(options.runTimeoutMs && { runTimeoutMs: options.runTimeoutMs }),
        ...(options.routing && { routing: options.routing }),
        ...(options.isolation && { isolation: options.isolation }),
        ...(options.shared && { shared: options.shared }),
        ...(options.heartbeatTimeoutMs && { heartbeatTimeoutMs: options.heartbeatTimeoutMs }),
        ...(options.niceness && { niceness: options.niceness }),
        ...(options.maxConsecutiveRestarts && { maxConsecutiveRestarts: options.maxConsecutiveRestarts }),
        ...(options.events && {
          onHealth: (worker: number, health: WorkerHealth) =>
            options.events!.emit('worker.health', { model: source.name, version: source.version, worker, ...health }),
        }),
      },
    );
    const ready = await pool.start();
    let model: LoadedModel;
    try {
      const signature = new ModelSignature(label, ready, manifest);
      for (const warning of signature.manifestMismatches(manifest))
        options.logger.warn({ model: source.name, version: source.version }, warning);
      model = new LoadedModel(options, pool, signature, {
        name: ready.backend,
        requested: options.backend.requested,
        ...(ready.fallbackReason !== undefined && { fallbackReason: ready.fallbackReason }),
        rejected: ready.rejected,
      });
      await model.#warmup(warmupRuns(source.options.warmup));
    } catch (err) {
      await pool.close(0);
      throw err;
    }
    return model;
  }

  /** Checks the inputs, batches the request and returns the outputs asked for. */
  async infer(
    inputs: Record<string, Tensor>,
    outputNames?: readonly string[],
    options: SubmitOptions = {},
  ): Promise<Record<string, Tensor>> {
    if (this.state !== 'ready') throw unavailable('model_not_ready', `${this.label} is ${this.state}`);
    const { rows } = this.signature.validate(inputs);
    const wanted = this.signature.selectOutputs(outputNames);
    this.#breaker?.admit();
    this.#requests++;
    const { source } = this.options;
    const started = performance.now();
    const requestId = options.requestId !== undefined ? { requestId: options.requestId } : {};
    try {
      const { outputs, batchSize, queueMs, computeMs } = await this.#batcher.submit(inputs, rows, options);
      this.#breaker?.succeeded();
      this.options.events?.emit('inference.end', {
        model: source.name,
        version: source.version,
        ...requestId,
        batchSize,
        queueMs,
        computeMs,
        ok: true,
      });
      return Object.fromEntries(wanted.filter((n) => outputs[n] !== undefined).map((n) => [n, outputs[n]!]));
    } catch (err) {
      this.#failures++;
      this.#breaker?.failed(err);
      const code = (err as { code?: unknown }).code;
      this.options.events?.emit('inference.end', {
        model: source.name,
        version: source.version,
        ...requestId,
        batchSize: 0,
        queueMs: performance.now() - started,
        computeMs: 0,
        ok: false,
        ...(typeof code === 'string' && { errorCode: code }),
      });
      throw err;
    }
  }

  /** How requests are batched now (global settings are runtime-adjustable). */
  get batching(): BatchingInfo {
    const now = this.#settings();
    return {
      ...this.#batching,
      maxBatchSize: now.maxBatchSize,
      maxQueueDelayMs: now.maxQueueDelayMs,
      preferredBatchSizes: [...now.preferredBatchSizes],
    };
  }

  /** Changes the batch size and queue delay while serving; the next batch formed uses them. */
  retune(update: BatchingUpdate): BatchingInfo {
    if (!this.#batching.enabled)
      throw badRequest(
        'model_not_batching',
        `${this.label} does not batch (${this.#batching.reason}); nothing to tune`,
      );
    this.#tuned = { ...this.#tuned, ...update };
    return this.batching;
  }

  /** The workers, for `/status` and for tests that kill one. */
  get pool(): WorkerPool {
    return this.#pool;
  }

  /** What the API shows about this version. */
  info(): ModelVersionInfo {
    const { name, version, origin, path, inputs, outputs, metadata } = this.described;
    const stats = this.#batcher.stats();
    return {
      name,
      version,
      state: this.state,
      origin,
      path,
      inputs,
      outputs,
      metadata,
      batching: this.batching,
      status: {
        backend: this.backend.name,
        requestedBackend: this.backend.requested,
        ...(this.backend.fallbackReason !== undefined && { fallbackReason: this.backend.fallbackReason }),
        queued: stats.queued,
        inFlight: this.#pool.pending,
        workers: this.#pool.workers.length,
        workerRestarts: this.#pool.restarts,
        isolation: this.options.isolation ?? 'thread',
        replicas: this.#pool.replicas(),
        requests: this.#requests,
        failures: this.#failures,
        batches: stats.batches,
        meanBatchSize: stats.batches === 0 ? 0 : Math.round((stats.batchedRequests / stats.batches) * 100) / 100,
        ...(this.#breaker && { breaker: this.#breaker.status() }),
      },
    };
  }

  /**
   * What `info()` says that stays the same for this version's life (a swap or a reload opens a new LoadedModel):
   * built once, as routes and hooks read a version's signature on every request.
   */
  get described(): Omit<ModelVersionInfo, 'state' | 'reason' | 'batching' | 'status'> {
    if (this.#described) return this.#described;
    const { source, manifest } = this.options;
    const { inputs: _i, outputs: _o, batching: _b, ...metadata } = manifest;
    this.#described = {
      name: source.name,
      version: source.version,
      origin: source.origin,
      path: source.modelPath,
      inputs: this.signature.inputs,
      outputs: this.signature.outputs,
      metadata,
    };
    return this.#described;
  }

  /** Stops taking requests, lets queued and running ones finish (up to `drainMs`), then ends the workers. */
  async close(drainMs: number): Promise<void> {
    this.state = 'unloading';
    const started = performance.now();
    await this.#batcher.drain(drainMs);
    await this.#pool.close(Math.max(0, drainMs - (performance.now() - started)));
  }

  // Dummy runs so the first real request does not pay for ORT's lazy initialisation: variable dims as 1, masks as 1.
  async #warmup(runs: number): Promise<void> {
    const dummy = (): Record<string, Tensor> => {
      const inputs: Record<string, Tensor> = {};
      for (const meta of this.signature.inputs) {
        const shape = meta.shape.map((d) => (d === -1 ? 1 : d));
        const data = allocateTensorData(meta.dtype, elementCount(shape));
        if (/mask/i.test(meta.name)) (data as Uint8Array).fill((isBigIntDataType(meta.dtype) ? 1n : 1) as number);
        inputs[meta.name] = { dtype: meta.dtype, shape, data };
      }
      return inputs;
    };
    try {
      for (let i = 0; i < runs; i++) await Promise.all(this.#pool.workers.map((w) => w.run(dummy())));
    } catch (err) {
      const message = (err as Error).message;
      // A model that cannot get the memory for one row of dummy inputs cannot serve anything: the load fails.
      if (isAllocationFailure(message)) {
        throw new NucleusError(
          507,
          'insufficient_memory',
          `${this.label} ran out of memory in its warm-up run (one row of dummy inputs), so it cannot serve: ${message}; free memory (unload other models) or serve a smaller or quantized model (models[].quantize)`,
        );
      }
      if (this.options.strictWarmup) {
        throw new NucleusError(
          422,
          'warmup_failed',
          `${this.label} failed its warm-up run (one row of dummy inputs): ${message}; fix the model, or load it with warmup: false to skip the warm-up`,
        );
      }
      this.options.logger.warn(
        { model: this.options.source.name, version: this.options.source.version, err: message },
        'warm-up run failed',
      );
    }
  }
}
