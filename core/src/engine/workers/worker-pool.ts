import type { Logger, Tensor } from '@nucleus/sdk';
import { SessionWorker, type RunResult, type SessionReady } from './session-worker.js';
import type { SessionWorkerSpec } from './worker-messages.js';

/** Replicas of one model version's session, each in its own thread; a run goes to the least busy one. */
export class WorkerPool {
  readonly workers: readonly SessionWorker[];

  constructor(
    spec: SessionWorkerSpec,
    size: number,
    options: { logger?: Logger; onHealth?(worker: number, health: { healthy: boolean; reason?: string; restarts: number }): void } = {},
  ) {
    this.workers = Array.from(
      { length: Math.max(1, size) },
      (_, i) =>
        new SessionWorker(spec, {
          ...(options.logger && { logger: options.logger }),
          ...(options.onHealth && { onHealth: (health) => options.onHealth!(i, health) }),
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

  /** Runs on the replica with the fewest pending runs. */
  run(inputs: Record<string, Tensor>): Promise<RunResult> {
    let best = this.workers[0]!;
    for (const w of this.workers) if (w.pending < best.pending) best = w;
    return best.run(inputs);
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
