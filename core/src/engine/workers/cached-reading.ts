import { performance } from 'node:perf_hooks';

/**
 * A figure read from the system (host free memory …) at most once per `maxAgeMs`: readers within that time share
 * the last reading, and one that needs it current asks for a fresh one.
 */
export class CachedReading<T> {
  #value: T | undefined;
  #at = Number.NEGATIVE_INFINITY;

  constructor(
    private readonly readNow: () => T,
    private readonly maxAgeMs: number,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** The last reading while it is younger than `maxAgeMs`, else (or with `fresh`) a new one. */
  read(fresh = false): T {
    const now = this.now();
    if (fresh || this.#value === undefined || now - this.#at >= this.maxAgeMs) {
      this.#value = this.readNow();
      this.#at = now;
    }
    return this.#value;
  }
}
