import { NucleusError, type Logger, type Tensor } from '@nucleus/sdk';
import { SessionWorker, type RunResult, type SessionReady } from './session-worker.js';
import type { SessionWorkerSpec } from './worker-messages.js';

/** Replicas of one model version's session, each in its own thread; a run goes to the least busy one. */
export class WorkerPool {
  readonly workers: readonly SessionWorker[];

  constructor(
    spec: SessionWorkerSpec,
    size: number,
    private readonly options: {
      logger?: Logger;
      onHealth?(worker: number, health: { healthy: boolean; reason?: string; restarts: number }): void;
      /** Passed to each replica: see `SessionWorkerOptions.runTimeoutMs`. */
      runTimeoutMs?: () => number;
      /** Told when a run is retried on another replica. */
      onRetry?(error: NucleusError): void;
    } = {},
  ) {
    this.workers = Array.from(
      { length: Math.max(1, size) },
      (_, i) =>
        new SessionWorker(spec, {
          ...(options.logger && { logger: options.logger }),
          ...(options.onHealth && { onHealth: (health) => options.onHealth!(i, health) }),
          ...(options.runTimeoutMs && { runTimeoutMs: options.runTimeoutMs }),
        }),
    );
  }

  /** Opens every replica; rejects (after closing the rest) when any cannot open. */
  async start(): Promise<SessionReady> {
    const results = await Promise.allSettled(this.workers.map((w) => w.start()));
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) {
      await this.close(0);
      throw failed.reason;
    }
    return (results[0] as PromiseFulfilledResult<SessionReady>).value;
  }

  /**
   * Runs on the replica with the fewest pending runs. A tensor run has no side effects, so when that replica dies
   * before answering, the run is sent once more to another replica (with a copy of the inputs: the first send moved
   * their buffers to the dead thread) instead of failing the whole batch.
   */
  async run(inputs: Record<string, Tensor>): Promise<RunResult> {
    const first = this.#leastBusy();
    if (this.workers.length < 2) return first.run(inputs);
    const spare = copyTensors(inputs);
    try {
      return await first.run(inputs);
    } catch (err) {
      if (!(err instanceof NucleusError) || !['worker_exited', 'worker_unavailable', 'worker_hung'].includes(err.code)) throw err;
      const other = this.#leastBusy(first);
      this.options.logger?.warn({ err: err.message }, 'a replica died or hung before answering; running the batch once more on another replica');
      this.options.onRetry?.(err);
      return other.run(spare);
    }
  }

  #leastBusy(except?: SessionWorker): SessionWorker {
    const candidates = this.workers.filter((w) => w !== except);
    let best = candidates[0] ?? this.workers[0]!;
    for (const w of candidates) if (w.pending < best.pending) best = w;
    return best;
  }

  /** Runs sent to any replica and not yet answered. */
  get pending(): number {
    return this.workers.reduce((n, w) => n + w.pending, 0);
  }

  /** Restarts across replicas. */
  get restarts(): number {
    return this.workers.reduce((n, w) => n + w.restarts, 0);
  }

  /** Closes every replica after its pending runs drain (up to `drainMs`). */
  async close(drainMs?: number): Promise<void> {
    await Promise.all(this.workers.map((w) => w.close(drainMs)));
  }
}

function copyTensors(inputs: Record<string, Tensor>): Record<string, Tensor> {
  const out: Record<string, Tensor> = {};
  for (const [name, t] of Object.entries(inputs)) out[name] = { dtype: t.dtype, shape: [...t.shape], data: t.data.slice() as Tensor['data'] };
  return out;
}
