import { AsyncLocalStorage } from 'node:async_hooks';

// The leases the running code is inside a use of. A request that disables a plugin runs inside that plugin's
// `onRequest` hook (which wraps the rest of the request): the drain must not wait for the request that asked for it.
const holding = new AsyncLocalStorage<readonly ActivationLease[]>();

/**
 * Counts the in-flight uses of one plugin activation, so that a reload or disable can wait for
 * them to finish before the old instance is disposed.
 */
export class ActivationLease {
  private inflight = 0;
  private waiters: Array<{ own: number; wake: () => void }> = [];

  /** Number of uses in progress. */
  get active(): number {
    return this.inflight;
  }

  /** The leases the calling code runs inside a use of (through {@link hold}), once per use. */
  static heldHere(): readonly ActivationLease[] {
    return holding.getStore() ?? [];
  }

  /** Runs `fn` as one use: in flight until it settles, and known to the code it calls ({@link heldHere}). */
  async hold<R>(fn: () => R | Promise<R>): Promise<R> {
    this.acquire();
    try {
      return await holding.run([...(holding.getStore() ?? []), this], fn);
    } finally {
      this.release();
    }
  }

  acquire(): void {
    this.inflight++;
  }

  release(): void {
    this.inflight--;
    if (this.waiters.length === 0) return;
    const waiting = this.waiters;
    this.waiters = waiting.filter((w) => this.inflight > w.own);
    for (const w of waiting) if (this.inflight <= w.own) w.wake();
  }

  /**
   * Resolves true once no use is in progress but the caller's `own` (those it runs inside, which cannot end before it
   * goes on), or false when `timeoutMs` passes first.
   */
  drained(timeoutMs: number, own = 0): Promise<boolean> {
    if (this.inflight <= own) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        resolve(false);
      }, timeoutMs);
      const waiter = {
        own,
        wake: () => {
          clearTimeout(timer);
          resolve(true);
        },
      };
      this.waiters.push(waiter);
    });
  }
}
