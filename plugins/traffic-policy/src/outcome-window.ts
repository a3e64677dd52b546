/** One answered request as a window keeps it. */
interface Sample {
  at: number;
  failed: boolean;
  durationMs: number;
}

/** Server-side failures and latencies of one variant's requests over a sliding time window. */
export class OutcomeWindow {
  #samples: Sample[] = [];

  constructor(readonly windowMs: number) {}

  add(at: number, failed: boolean, durationMs: number): void {
    this.#samples.push({ at, failed, durationMs });
  }

  /** Requests answered in the window ending at `now`. */
  count(now: number): number {
    return this.#prune(now).length;
  }

  /** The failed share of the window's requests (0 when it holds none). */
  errorRate(now: number): number {
    const s = this.#prune(now);
    return s.length === 0 ? 0 : s.filter((x) => x.failed).length / s.length;
  }

  /** The 99th percentile latency of the window's successful requests (nearest rank), or undefined when none. */
  p99(now: number): number | undefined {
    const ok = this.#prune(now)
      .filter((x) => !x.failed)
      .map((x) => x.durationMs)
      .sort((a, b) => a - b);
    return ok.length === 0 ? undefined : ok[Math.ceil(0.99 * ok.length) - 1];
  }

  clear(): void {
    this.#samples = [];
  }

  #prune(now: number): Sample[] {
    const from = now - this.windowMs;
    let drop = 0;
    while (drop < this.#samples.length && this.#samples[drop]!.at < from) drop++;
    if (drop > 0) this.#samples = this.#samples.slice(drop);
    return this.#samples;
  }
}
