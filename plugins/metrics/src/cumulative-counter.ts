import type { Counter } from 'prom-client';

/**
 * Feeds a Prometheus counter from a running total that the source reports (e.g. `cache.stats` hits):
 * each report adds the difference to the previous one; a total that went down means the source
 * restarted, so the whole new total is added.
 */
export class CumulativeCounter<L extends string> {
  private readonly last = new Map<string, number>();

  constructor(private readonly counter: Counter<L>) {}

  /** Records the source's current total for these labels. */
  observe(labels: Record<L, string>, total: number): void {
    const key = JSON.stringify(labels);
    const previous = this.last.get(key);
    this.last.set(key, total);
    const delta = previous === undefined || total < previous ? total : total - previous;
    if (delta > 0) this.counter.inc(labels, delta);
  }
}
