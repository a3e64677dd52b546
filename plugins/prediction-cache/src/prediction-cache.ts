import type { CachePolicy } from '@nucleus/sdk';

/** Counters of one model's share of the cache; hits, misses and evictions are cumulative. */
export interface ModelCacheStats {
  hits: number;
  misses: number;
  evictions: number;
  bytes: number;
  entries: number;
}

interface Entry {
  readonly model: string;
  readonly body: Record<string, unknown>;
  readonly bytes: number;
  readonly expiresAt: number;
}

/** What a lookup found. */
export type Lookup = { hit: true; body: Record<string, unknown> } | { hit: false };

/** How often at most expired entries are swept out (they also go when looked up or evicted). */
const SWEEP_INTERVAL_MS = 1000;
/** A policy that keeps naming keys the cache does not hold is given up on after this many in a row. */
const STALE_VICTIMS = 64;

/**
 * Complete responses of deterministic requests by key, bounded in bytes: when a new entry does not fit, the cache
 * policy names what goes (`lru` by default). Each entry lives until its time to live runs out. Entries are grouped by
 * model, so a model's swap or reload drops exactly its own; each model has an epoch that such a drop moves on, so an
 * answer computed by the old version and finished after the drop is not stored as the new version's.
 */
export class PredictionCache {
  readonly #entries = new Map<string, Entry>();
  readonly #byModel = new Map<string, Set<string>>();
  readonly #stats = new Map<string, ModelCacheStats>();
  readonly #epochs = new Map<string, number>();
  #bytes = 0;
  #nextSweep = 0;

  constructor(
    readonly maxBytes: number,
    private readonly policy: CachePolicy,
    private readonly now: () => number = Date.now,
  ) {}

  /** Bytes held. */
  get bytes(): number {
    return this.#bytes;
  }

  /** Entries held. */
  get size(): number {
    return this.#entries.size;
  }

  /** A model's counters (zeros when it was never looked up). */
  stats(model: string): ModelCacheStats {
    return { ...this.#statsOf(model) };
  }

  /** The models the cache has counters for. */
  models(): string[] {
    return [...this.#stats.keys()];
  }

  /** The model's epoch now: pass it to {@link PredictionCache.store} with an answer computed from here on. */
  epoch(model: string): number {
    return this.#epochs.get(model) ?? 0;
  }

  /** The stored answer of `key`, counted as a hit or a miss of `model`; an expired one is dropped and misses. */
  get(model: string, key: string): Lookup {
    const stats = this.#statsOf(model);
    const entry = this.#entries.get(key);
    if (entry && entry.expiresAt > this.now()) {
      stats.hits++;
      this.policy.onAccess(key);
      return { hit: true, body: entry.body };
    }
    if (entry) this.#delete(key);
    stats.misses++;
    return { hit: false };
  }

  /**
   * Keeps `body` under `key` for `ttlMs`, unless the model was invalidated since `epoch` or the body alone is larger
   * than the cache; evicts what the policy names until it fits. Returns whether it was stored.
   */
  store(
    model: string,
    key: string,
    body: Record<string, unknown>,
    bytes: number,
    ttlMs: number,
    epoch: number,
  ): boolean {
    if (ttlMs <= 0 || bytes > this.maxBytes || this.epoch(model) !== epoch) return false;
    this.#sweep();
    if (this.#entries.has(key)) this.#delete(key);
    let stale = 0;
    while (this.#bytes + bytes > this.maxBytes) {
      // A policy that names nothing, or keeps naming keys not held, cannot make room: the answer is left out.
      const victim = this.policy.victim();
      if (victim === undefined) return false;
      const gone = this.#entries.get(victim);
      if (!gone) {
        this.policy.onRemove(victim);
        if (++stale > STALE_VICTIMS) return false;
        continue;
      }
      this.#statsOf(gone.model).evictions++;
      this.#delete(victim);
    }
    this.#entries.set(key, { model, body, bytes, expiresAt: this.now() + ttlMs });
    let keys = this.#byModel.get(model);
    if (!keys) this.#byModel.set(model, (keys = new Set()));
    keys.add(key);
    this.#bytes += bytes;
    const stats = this.#statsOf(model);
    stats.bytes += bytes;
    stats.entries++;
    this.policy.onInsert(key, bytes);
    return true;
  }

  /** Drops every answer of `model` and moves its epoch on: answers computed before this are not stored. */
  invalidate(model: string): number {
    this.#epochs.set(model, this.epoch(model) + 1);
    const keys = [...(this.#byModel.get(model) ?? [])];
    for (const key of keys) this.#delete(key);
    return keys.length;
  }

  /** Drops everything (not counted as evictions). */
  clear(): void {
    for (const key of [...this.#entries.keys()]) this.#delete(key);
  }

  #delete(key: string): void {
    const entry = this.#entries.get(key);
    if (!entry) return;
    this.#entries.delete(key);
    this.#byModel.get(entry.model)?.delete(key);
    this.#bytes -= entry.bytes;
    const stats = this.#statsOf(entry.model);
    stats.bytes -= entry.bytes;
    stats.entries--;
    this.policy.onRemove(key);
  }

  // Expired entries are found when looked up; this drops the ones nobody asks for again, at most once a second.
  #sweep(): void {
    const now = this.now();
    if (now < this.#nextSweep) return;
    this.#nextSweep = now + SWEEP_INTERVAL_MS;
    for (const [key, entry] of this.#entries) if (entry.expiresAt <= now) this.#delete(key);
  }

  #statsOf(model: string): ModelCacheStats {
    let stats = this.#stats.get(model);
    if (!stats) this.#stats.set(model, (stats = { hits: 0, misses: 0, evictions: 0, bytes: 0, entries: 0 }));
    return stats;
  }
}
