/**
 * Counters that each replica of a model reports as running totals, summed over the replicas so that the model's
 * totals never go down: a replica's new thread or process counts from zero again (its incarnation changes), and a
 * replica that is gone (retired) leaves what it counted in the totals.
 */
export class ReplicaCounters<K extends string> {
  readonly #last = new Map<number, { incarnation: number; totals: Record<K, number> }>();
  readonly #base: Record<K, number>;

  constructor(private readonly keys: readonly K[]) {
    this.#base = zeros(keys);
  }

  /** A replica's totals since its current thread or process (`incarnation`) started. */
  report(replica: number, incarnation: number, totals: Readonly<Record<K, number>>): void {
    const last = this.#last.get(replica);
    // Counters that went down without a new incarnation seen: a restart all the same.
    if (last && (last.incarnation !== incarnation || this.keys.some((k) => totals[k] < last.totals[k])))
      this.#keep(last.totals);
    const copy = zeros(this.keys);
    for (const k of this.keys) copy[k] = totals[k];
    this.#last.set(replica, { incarnation, totals: copy });
  }

  /** The totals over every replica that ever reported; `live` are the replica ids that still run. */
  totals(live: Iterable<number>): Record<K, number> {
    const alive = new Set(live);
    for (const [id, last] of this.#last) {
      if (alive.has(id)) continue;
      this.#keep(last.totals);
      this.#last.delete(id);
    }
    const sum = { ...this.#base };
    for (const { totals } of this.#last.values()) for (const k of this.keys) sum[k] += totals[k];
    return sum;
  }

  #keep(gone: Record<K, number>): void {
    for (const k of this.keys) this.#base[k] += gone[k];
  }
}

function zeros<K extends string>(keys: readonly K[]): Record<K, number> {
  return Object.fromEntries(keys.map((k) => [k, 0])) as Record<K, number>;
}
