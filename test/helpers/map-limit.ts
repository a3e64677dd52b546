import { availableParallelism } from 'node:os';

/**
 * Maps items through `fn` with at most `limit` calls in flight (by default one per core), results in input
 * order: for independent child processes, which would otherwise leave all cores but one idle.
 */
export async function mapLimit<T, R>(
  items: readonly T[],
  fn: (item: T, index: number) => Promise<R>,
  limit = availableParallelism(),
): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i]!, i);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, lane));
  return results;
}
