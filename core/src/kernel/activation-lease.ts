/**
 * Counts the in-flight uses of one plugin activation, so that a reload or disable can wait for
 * them to finish before the old instance is disposed.
 */
export class ActivationLease {
  private inflight = 0;
  /** Each waiter wakes once no more than `own` uses remain (the ones the waiting work holds itself). */
  private waiters: Array<{ own: number; wake: () => void }> = [];

  /** Number of uses in progress. */
  get active(): number {
    return this.inflight;
  }

  acquire(): void {
    this.inflight++;
  }

  /** Releases, then passes a use's value on: a `then` callback made once per lease rather than once per use. */
  readonly settled = <R>(value: R): R => {
    this.release();
    return value;
  };

  /** Releases, then passes a use's error on. */
  readonly failed = (err: unknown): never => {
    this.release();
    throw err;
  };

  release(): void {
    const left = --this.inflight;
    if (this.waiters.length === 0) return;
    const ready = this.waiters.filter((w) => left <= w.own);
    if (ready.length === 0) return;
    this.waiters = this.waiters.filter((w) => left > w.own);
    for (const w of ready) w.wake();
  }

  /**
   * Resolves true once no use is in progress but the `own` ones the caller holds itself (a request that disables
   * a plugin whose hook it passed through), or false when `timeoutMs` passes first.
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
