import type { CachePolicy, CachePolicyFactory } from '@nucleus/sdk';

/**
 * Least recently used first. A Map keeps its keys in insertion order, so moving a key to the end on every use keeps
 * the least recently used one first: every operation is O(1).
 */
export class LruPolicy implements CachePolicy {
  readonly name = 'lru';
  /** This file: caches in worker threads import it and call its default export for their own instance. */
  readonly module = import.meta.url;
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

/** A fresh LRU policy: what a cache in another thread gets when it imports {@link LruPolicy.module}. */
const createLruPolicy: CachePolicyFactory = () => new LruPolicy();
export default createLruPolicy;
