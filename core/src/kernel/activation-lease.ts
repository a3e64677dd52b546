/**
 * Counts the in-flight uses of one plugin activation, so that a reload or disable can wait for
 * them to finish before the old instance is disposed.
 */
export class ActivationLease {
  private inflight = 0;
  private waiters: Array<() => void> = [];

  /** Number of uses in progress. */
  get active(): number {
    return this.inflight;
  }

  acquire(): void {
    this.inflight++;
  }

  release(): void {
    if (--this.inflight === 0) {
      const waiters = this.waiters;
      this.waiters = [];
      for (const wake of waiters) wake();
    }
  }

  /** Resolves true once no use is in progress, or false when `timeoutMs` passes first. */
  drained(timeoutMs: number): Promise<boolean> {
    if (this.inflight === 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== wake);
        resolve(false);
      }, timeoutMs);
      const wake = () => {
        clearTimeout(timer);
        resolve(true);
      };
      this.waiters.push(wake);
    });
  }
}
