import { freemem } from 'node:os';
import {
  NucleusError,
  type Logger,
  type ReplicaRouter,
  type Tensor,
  type WorkerLoad,
  type WorkerReplicaStatus,
} from '@nucleus/sdk';
import { CachedReading } from './cached-reading.js';
import { ReplicaSet } from './replica-set.js';
import { SessionWorkerClient, type RunResult, type SessionReady } from './session-worker-client.js';
import type { SharedSessionThread } from './shared-session-thread.js';
import type { WorkerHealth } from './worker-supervisor.js';
import type { WorkerIsolation } from './worker-handle.js';
import type { SessionWorkerSpec } from './worker-messages.js';

/** Options of a {@link WorkerPool}. */
export interface WorkerPoolOptions {
  logger?: Logger;
  onHealth?(worker: number, health: WorkerHealth): void;
  /** Passed to each replica: see `SessionWorkerClientOptions.runTimeoutMs`. */
  runTimeoutMs?: () => number;
  /** Each replica a thread (default) or a child process. */
  isolation?: WorkerIsolation;
  /** Passed to each replica: see `SessionWorkerClientOptions.heartbeatTimeoutMs`. */
  heartbeatTimeoutMs?: () => number;
  /** Passed to each replica: see `SessionWorkerClientOptions.niceness`. */
  niceness?: () => number;
  /** Passed to each replica: see `SessionWorkerClientOptions.maxConsecutiveRestarts`. */
  maxConsecutiveRestarts?: () => number;
  /** Told when a run is retried on another replica. */
  onRetry?(error: NucleusError): void;
  /** The router that picks a replica (read per run); none means the least busy. */
  routing?: () => ReplicaRouter | undefined;
  /**
   * Memory the host or device may still allocate, read per run; undefined when unknown. Default: host free memory
   * for replicas on the CPU backend, unknown for the rest.
   */
  freeMemoryBytes?: (worker: SessionWorkerClient) => number | undefined;
  /** A batch's estimated peak memory is its input bytes times this (outputs and intermediates). Default 3. */
  memoryFactor?: number;
  /**
   * The host's free memory as the default `freeMemoryBytes` reads it. Default: `os.freemem()` read at most once per
   * {@link FREE_MEMORY_MAX_AGE_MS}, which under load saves a system call per batch.
   */
  hostFreeMemory?: CachedReading<number>;
  /**
   * The thread the first replica opens its session in, beside other small models (see
   * `SessionWorkerClientOptions.shared`). Replicas added later get threads of their own: a second replica in the same
   * thread would only take turns with the first.
   */
  shared?: SharedSessionThread;
}

/**
 * How long one reading of the host's free memory serves routing. Batches routed meanwhile are accounted for by their
 * reservations; what it misses is memory other processes take or give back, and a batch waiting for room reads
 * the host afresh.
 */
export const FREE_MEMORY_MAX_AGE_MS = 200;

const RETRYABLE = ['worker_exited', 'worker_unavailable', 'worker_hung'];

/**
 * Replicas of one model version's session, each in its own thread or child process. A run goes to the replica the
 * routing strategy picks from the replicas' loads; a replica that died is out of the choice until it serves again,
 * and replicas can be added and retired while serving ({@link resize}).
 */
export class WorkerPool {
  readonly #replicas: ReplicaSet<SessionWorkerClient, SessionReady>;
  readonly #healthy = new Map<SessionWorkerClient, boolean>();
  readonly #ids = new Map<SessionWorkerClient, number>();
  // Estimated bytes of the batches each replica is running, taken off the free-memory figure: the host does not
  // show an allocation until the run makes it.
  readonly #reserved = new Map<SessionWorkerClient, number>();
  // Batches routed to each replica and not yet answered; counted from the choice, not from the post to the thread.
  readonly #active = new Map<SessionWorkerClient, number>();
  readonly #waiters = new Set<() => void>();
  #nextId = 0;
  readonly #hostFree: CachedReading<number>;
  // Batches routed and not yet answered.
  #routed = 0;

  constructor(
    readonly spec: SessionWorkerSpec,
    size: number,
    private readonly options: WorkerPoolOptions = {},
  ) {
    this.#hostFree = options.hostFreeMemory ?? new CachedReading(freemem, FREE_MEMORY_MAX_AGE_MS);
    this.#replicas = new ReplicaSet(
      size,
      {
        create: () => this.#create(),
        start: (w) => w.start(),
        // Its runs were sent before it was retired: it closes once they are answered (no deadline beyond the run timeout).
        idle: async (w) => {
          while (w.pending > 0 || this.#activeOn(w) > 0) await new Promise((r) => setTimeout(r, 10));
        },
        close: (w) => w.close(0),
      },
      {
        onOpenFailed: (_w, err) =>
          this.options.logger?.error(
            { model: this.spec.label, err: (err as Error).message },
            'a new replica could not open',
          ),
        onRemoved: (w) => this.#forget(w),
        onAdded: () => {
          this.options.logger?.info({ model: this.spec.label, replicas: this.workers.length }, 'replicas added');
          this.#wake();
        },
        onRetiring: (retired) =>
          this.options.logger?.info(
            { model: this.spec.label, replicas: this.workers.length, retiring: retired.length },
            'replicas retiring after their runs',
          ),
        onClose: () => this.#wake(),
      },
    );
  }

  /** The replicas taking new runs (not those being retired). */
  get workers(): readonly SessionWorkerClient[] {
    return this.#replicas.active;
  }

  /** Opens every replica; rejects (after closing the rest) when any cannot open. */
  start(): Promise<SessionReady> {
    return this.#replicas.start();
  }

  /**
   * Grows or shrinks the pool to `size` replicas. New replicas take runs once their session is open; a retired one
   * takes no new runs and ends after the runs it holds are answered, so no request is dropped.
   */
  resize(size: number): Promise<void> {
    return this.#replicas.resize(size);
  }

  /**
   * Runs on the replica the routing strategy picks; when it answers -1 (no replica has room) the run waits for one to
   * finish a run. A tensor run has no side effects, so when that replica dies before answering, the run is sent once
   * more to another replica (with a copy of the inputs: the first send moved their buffers to the dead thread)
   * instead of failing the whole batch.
   */
  async run(inputs: Record<string, Tensor>): Promise<RunResult> {
    const estimatedBytes = estimateBytes(inputs) * (this.options.memoryFactor ?? 3);
    const first = await this.#pick(estimatedBytes);
    if (this.workers.length < 2) return this.#runOn(first, inputs, estimatedBytes);
    const spare = copyTensors(inputs);
    try {
      return await this.#runOn(first, inputs, estimatedBytes);
    } catch (err) {
      if (!(err instanceof NucleusError) || !RETRYABLE.includes(err.code)) throw err;
      const other = this.#leastBusy(first);
      this.options.logger?.warn(
        { err: err.message },
        'a replica died or hung before answering; running the batch once more on another replica',
      );
      this.options.onRetry?.(err);
      this.#reserve(other, estimatedBytes);
      return this.#runOn(other, spare, estimatedBytes);
    }
  }

  /** Each replica taking runs, as `/status` shows it. */
  replicas(): WorkerReplicaStatus[] {
    return this.workers.map((w) => w.status(this.#ids.get(w) ?? -1));
  }

  /** The load of each replica taking runs, as a routing strategy sees it. */
  loads(): WorkerLoad[] {
    return this.workers.map((w) => {
      const free = this.#freeMemory(w);
      return {
        id: String(this.#ids.get(w)),
        healthy: this.#healthy.get(w) !== false,
        activeBatches: this.#activeOn(w),
        inflight: Math.max(this.#activeOn(w), w.pending),
        ...(free !== undefined && { freeMemoryBytes: Math.max(0, free - this.#reservedTotal()) }),
      };
    });
  }

  /** Runs waiting for a replica with room. */
  get waiting(): number {
    return this.#waiters.size;
  }

  // Chooses a replica and reserves the batch's memory on it in the same tick, so runs routed together see each other.
  async #pick(estimatedBytes: number): Promise<SessionWorkerClient> {
    let waited = false;
    for (;;) {
      const strategy = this.options.routing?.();
      let chosen: SessionWorkerClient | undefined;
      if (!strategy || this.#replicas.closed) chosen = this.#leastBusy();
      else {
        // A batch that waited for room sees the memory given back since, not a reading from before.
        if (waited) this.#hostFree.read(true);
        const index = strategy.pickWorker(this.loads(), { estimatedBytes });
        chosen = index >= 0 ? this.workers[index] : undefined;
        // Waiting only helps while some run can finish and give its memory back; with nothing running the figure
        // will not change, and refusing for ever would hang the request.
        if (!chosen && this.#routed === 0) {
          this.options.logger?.warn(
            { model: this.spec.label, estimatedBytes, strategy: strategy.name },
            'no replica reports room for the batch and none is busy; running it on the least busy one',
          );
          chosen = this.#leastBusy();
        }
      }
      if (chosen) {
        this.#reserve(chosen, estimatedBytes);
        return chosen;
      }
      await new Promise<void>((resolve) => this.#waiters.add(resolve));
      waited = true;
    }
  }

  #reserve(worker: SessionWorkerClient, estimatedBytes: number): void {
    this.#routed++;
    this.#active.set(worker, this.#activeOn(worker) + 1);
    this.#reserved.set(worker, (this.#reserved.get(worker) ?? 0) + estimatedBytes);
  }

  // Runs a batch already reserved on `worker`, and gives the reservation back when it is answered.
  async #runOn(
    worker: SessionWorkerClient,
    inputs: Record<string, Tensor>,
    estimatedBytes: number,
  ): Promise<RunResult> {
    try {
      return await worker.run(inputs);
    } finally {
      this.#routed--;
      this.#active.set(worker, Math.max(0, this.#activeOn(worker) - 1));
      this.#reserved.set(worker, Math.max(0, (this.#reserved.get(worker) ?? 0) - estimatedBytes));
      this.#wake();
    }
  }

  #activeOn(worker: SessionWorkerClient): number {
    return this.#active.get(worker) ?? 0;
  }

  #wake(): void {
    const waiters = [...this.#waiters];
    this.#waiters.clear();
    for (const w of waiters) w();
  }

  #freeMemory(worker: SessionWorkerClient): number | undefined {
    if (this.options.freeMemoryBytes) return this.options.freeMemoryBytes(worker);
    return (worker.info?.backend ?? this.spec.backend.name) === 'cpu' ? this.#hostFree.read() : undefined;
  }

  #reservedTotal(): number {
    let total = 0;
    for (const bytes of this.#reserved.values()) total += bytes;
    return total;
  }

  // The least busy healthy replica (other than `except`); an unhealthy one only when no other is left.
  #leastBusy(except?: SessionWorkerClient): SessionWorkerClient {
    const others = this.workers.filter((w) => w !== except);
    const healthy = others.filter((w) => this.#healthy.get(w) !== false);
    const candidates = healthy.length > 0 ? healthy : others;
    let best = candidates[0] ?? this.workers[0]!;
    const busy = (w: SessionWorkerClient): number => Math.max(this.#activeOn(w), w.pending);
    for (const w of candidates) if (busy(w) < busy(best)) best = w;
    return best;
  }

  #create(): SessionWorkerClient {
    const id = this.#nextId++;
    const options = this.options;
    const worker: SessionWorkerClient = new SessionWorkerClient(this.spec, {
      ...(options.logger && { logger: options.logger }),
      onHealth: (health) => {
        this.#healthy.set(worker, health.healthy);
        options.onHealth?.(id, health);
        // Runs waiting for a replica with room may have one again.
        if (health.healthy) this.#wake();
      },
      ...(options.runTimeoutMs && { runTimeoutMs: options.runTimeoutMs }),
      ...(options.isolation && { isolation: options.isolation }),
      ...(options.heartbeatTimeoutMs && { heartbeatTimeoutMs: options.heartbeatTimeoutMs }),
      ...(options.niceness && { niceness: options.niceness }),
      ...(options.maxConsecutiveRestarts && { maxConsecutiveRestarts: options.maxConsecutiveRestarts }),
      ...(options.shared && id === 0 && { shared: options.shared }),
    });
    this.#ids.set(worker, id);
    return worker;
  }

  #forget(worker: SessionWorkerClient): void {
    this.#healthy.delete(worker);
    this.#ids.delete(worker);
    this.#reserved.delete(worker);
    this.#active.delete(worker);
  }

  /** Runs sent to any replica (retiring ones included) and not yet answered. */
  get pending(): number {
    let n = 0;
    for (const w of this.#replicas.all) n += w.pending;
    return n;
  }

  /** Restarts across replicas. */
  get restarts(): number {
    return this.workers.reduce((n, w) => n + w.restarts, 0);
  }

  /** Closes every replica after its pending runs drain (up to `drainMs`). */
  close(drainMs?: number): Promise<void> {
    return this.#replicas.close((w) => w.close(drainMs));
  }
}

function estimateBytes(inputs: Record<string, Tensor>): number {
  let bytes = 0;
  for (const t of Object.values(inputs)) bytes += t.data.byteLength;
  return bytes;
}

function copyTensors(inputs: Record<string, Tensor>): Record<string, Tensor> {
  const out: Record<string, Tensor> = {};
  for (const [name, t] of Object.entries(inputs))
    out[name] = { dtype: t.dtype, shape: [...t.shape], data: t.data.slice() as Tensor['data'] };
  return out;
}
