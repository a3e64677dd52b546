import type { CachePolicy, CachePolicyFactory, CachePolicySpec } from '@nucleus/sdk';

/**
 * Least recently used first. A Map keeps its keys in insertion order, so moving a key to the end on every use keeps
 * the least recently used one first: every operation is O(1).
 */
export class LruPolicy implements CachePolicy {
  readonly #order = new Map<string, number>();

  onInsert(key: string, bytes: number): void {
    this.#order.delete(key);
    this.#order.set(key, bytes);
  }

  onAccess(key: string): void {
    const bytes = this.#order.get(key);
    if (bytes === undefined) return;
    this.#order.delete(key);
    this.#order.set(key, bytes);
  }

  onRemove(key: string): void {
    this.#order.delete(key);
  }

  victim(): string | undefined {
    return this.#order.keys().next().value;
  }

  /** Keys from least to most recently used (for tests and tools). */
  keys(): string[] {
    return [...this.#order.keys()];
  }
}

/** A fresh LRU policy: what a cache gets when it imports this file (it takes no options). */
const createLruPolicy: CachePolicyFactory = () => new LruPolicy();
export default createLruPolicy;

/** The `lru` policy as the plugin contributes it: caches in any thread import this file for their own instance. */
export const LRU_POLICY: CachePolicySpec = Object.freeze({ name: 'lru', module: import.meta.url });
