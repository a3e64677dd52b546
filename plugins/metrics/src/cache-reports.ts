import type { NucleusEvents } from '@nucleus/sdk';

/** The labels of the cache metrics. */
export type CacheLabel = 'cache' | 'model_name';
export const CACHE: readonly CacheLabel[] = ['cache', 'model_name'];

type Report = NucleusEvents['cache.stats'];
type Totals = { hits: number; misses: number; evictions: number };

interface Series {
  labels: Record<CacheLabel, string>;
  /** The totals of the previous report, to take the next one's differences from. */
  last?: Totals;
  /** What the counters gain at the next read. */
  added: Totals;
  /** The latest report not read yet. */
  latest?: Report;
}

// A total that went down means the cache started over: all of the new total is new.
const gained = (total: number, previous: number | undefined) =>
  previous === undefined || total < previous ? total : total - previous;

/**
 * The `cache.stats` reports since the metrics were last read, per cache and model. A cache reports its running totals
 * with every request it takes part in: each report adds its differences to the previous one here, in plain numbers,
 * and the Prometheus counters and gauges are brought up to date once per scrape rather than once per request.
 */
export class CacheReports {
  private readonly series = new Map<string, Series>();

  report(e: Report): void {
    const model = e.model ?? '';
    const key = `${e.name}\u0000${model}`;
    let s = this.series.get(key);
    if (!s) {
      s = { labels: { cache: e.name, model_name: model }, added: { hits: 0, misses: 0, evictions: 0 } };
      this.series.set(key, s);
    }
    s.added.hits += gained(e.hits, s.last?.hits);
    s.added.misses += gained(e.misses, s.last?.misses);
    s.added.evictions += gained(e.evictions, s.last?.evictions);
    s.last ??= { hits: 0, misses: 0, evictions: 0 };
    s.last.hits = e.hits;
    s.last.misses = e.misses;
    s.last.evictions = e.evictions;
    s.latest = e;
  }

  /** Hands every series with a report since the last call to `apply`, with what its counters gained, and resets them. */
  drain(apply: (labels: Record<CacheLabel, string>, added: Totals, latest: Report) => void): void {
    for (const s of this.series.values()) {
      if (!s.latest) continue;
      apply(s.labels, s.added, s.latest);
      s.added = { hits: 0, misses: 0, evictions: 0 };
      s.latest = undefined;
    }
  }
}
