import type { Metric, Registry } from 'prom-client';

/** One label set's counts. */
interface Series {
  labels: Record<string, string>;
  /** Observations per bucket (not cumulative); the last one is +Inf. */
  buckets: Float64Array;
  sum: number;
  count: number;
}

/**
 * A Prometheus histogram for values that arrive often, in groups (one per streamed token) or one by one (one per HTTP
 * request): {@link BucketHistogram.observeAll} counts a whole group into plain arrays with no allocation per value
 * (prom-client's `Histogram.observe` builds and validates a label set for every call). It registers in a prom-client registry like any metric, and its exposition
 * is a histogram's: cumulative `_bucket` series with `le`, then `_sum` and `_count`.
 */
export class BucketHistogram<L extends string> {
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  readonly #series = new Map<string, Series>();

  constructor(
    readonly name: string,
    readonly help: string,
    private readonly labelNames: readonly L[],
    private readonly upperBounds: readonly number[],
    registers: readonly Registry[],
  ) {
    for (const registry of registers) registry.registerMetric(this as unknown as Metric);
  }

  /** Counts every value of `values`, multiplied by `scale` (to turn milliseconds into seconds). */
  observeAll(labels: Record<L, string>, values: readonly number[], scale = 1): void {
    const series = this.series(labels);
    for (const raw of values) this.count(series, raw * scale);
  }

  /** Counts one value. */
  observe(labels: Record<L, string>, value: number): void {
    this.count(this.series(labels), value);
  }

  private series(labels: Record<L, string>): Series {
    const key = this.labelNames.map((n) => labels[n]).join('\u0000');
    let series = this.#series.get(key);
    if (!series) {
      series = { labels: { ...labels }, buckets: new Float64Array(this.upperBounds.length + 1), sum: 0, count: 0 };
      this.#series.set(key, series);
    }
    return series;
  }

  private count(series: Series, v: number): void {
    const bounds = this.upperBounds;
    let i = 0;
    while (i < bounds.length && v > bounds[i]!) i++;
    series.buckets[i]!++;
    series.sum += v;
    series.count++;
  }

  /** What a registry renders, in prom-client's shape. */
  async get(): Promise<{
    name: string;
    help: string;
    type: 'histogram';
    aggregator: 'sum';
    values: { metricName: string; labels: Record<string, string | number>; value: number }[];
  }> {
    const values: { metricName: string; labels: Record<string, string | number>; value: number }[] = [];
    for (const s of this.#series.values()) {
      let cumulative = 0;
      this.upperBounds.forEach((le, i) => {
        cumulative += s.buckets[i]!;
        values.push({ metricName: `${this.name}_bucket`, labels: { le, ...s.labels }, value: cumulative });
      });
      values.push({ metricName: `${this.name}_bucket`, labels: { le: '+Inf', ...s.labels }, value: s.count });
      values.push({ metricName: `${this.name}_sum`, labels: s.labels, value: s.sum });
      values.push({ metricName: `${this.name}_count`, labels: s.labels, value: s.count });
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }

  /** Forgets every series (a registry's `resetMetrics`). */
  reset(): void {
    this.#series.clear();
  }
}
