import type { EventBus } from '@nucleus/sdk';

/** Requests started and never seen to end are forgotten beyond this many, so a lost end cannot hold jobs back forever. */
const MAX_TRACKED = 10_000;

/** The job API's own requests (uploading a job's file, polling its status) are not traffic a job yields to. */
const JOB_PATHS = /^\/v1\/(files|batches)(\/|$)|^\/v2\/models\/[^/]+\/batches(\/|$)/;

/**
 * The interactive requests in flight on this server, followed on the event bus (`request.start` and `request.end`,
 * which HTTP, WebSocket and gRPC requests all emit), and a wait for a pause in them: what a batch job yields to.
 *
 * A job's rows cost the server's event loop (parsing rows, building tensors, writing results) and the cores as much
 * as the model's run does, so reordering the engine's queue alone leaves interactive requests waiting behind that
 * work; a job that starts its next chunk only when no interactive request is in flight does not.
 */
export class InteractiveTraffic {
  readonly #inFlight = new Set<string>();
  readonly #waiters = new Set<() => void>();
  readonly #off: () => void;
  #lastEnd = Number.NEGATIVE_INFINITY;

  constructor(events: EventBus) {
    const offStart = events.on('request.start', (e) => {
      if (JOB_PATHS.test(e.path)) return;
      if (this.#inFlight.size >= MAX_TRACKED) this.#inFlight.delete(this.#inFlight.values().next().value!);
      this.#inFlight.add(e.requestId);
    });
    const offEnd = events.on('request.end', (e) => {
      if (!this.#inFlight.delete(e.requestId)) return;
      this.#lastEnd = performance.now();
      if (this.#inFlight.size > 0) return;
      for (const wake of [...this.#waiters]) wake();
    });
    this.#off = () => {
      offStart();
      offEnd();
    };
  }

  /** Interactive requests in flight now. */
  get inFlight(): number {
    return this.#inFlight.size;
  }

  /**
   * Whether interactive traffic is going on: a request in flight, or one that ended less than `quietMs` ago. Clients
   * send their next request moments after an answer, so a gap between two requests is not the end of the traffic.
   */
  active(quietMs: number): boolean {
    return this.#inFlight.size > 0 || performance.now() - this.#lastEnd < quietMs;
  }

  /**
   * Resolves at once when no interactive request is in flight, else when the last one ends, after `maxWaitMs` (so
   * a job still advances under traffic that never pauses), or when `signal` aborts, whichever comes first.
   */
  pause(maxWaitMs: number, signal?: AbortSignal): Promise<void> {
    if (this.#inFlight.size === 0 || signal?.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', done);
        this.#waiters.delete(done);
        resolve();
      };
      const timer = setTimeout(done, maxWaitMs);
      signal?.addEventListener('abort', done, { once: true });
      this.#waiters.add(done);
    });
  }

  /** Stops following the bus and lets every waiting job go on. */
  close(): void {
    this.#off();
    this.#inFlight.clear();
    for (const wake of [...this.#waiters]) wake();
  }
}
