import type { CachePolicy } from '@nucleus/sdk';
import type { KvLayout } from '../generation/kv-batch.js';
import { PrefixCache } from './prefix-cache.js';
import { type PrefixCacheFileIdentity, readPrefixCacheFile, writePrefixCacheFile } from './prefix-cache-file.js';

/** Where a prefix cache is kept between runs, and the model, graph and block size it belongs to. */
export type PrefixCachePersistence = { path: string } & PrefixCacheFileIdentity;

/** A prefix cache as it opens: restored from its file, or empty with the reason the file was not used. */
export interface OpenedPrefixCache {
  cache: PrefixCache;
  restored?: { blocks: number; bytes: number };
  ignored?: string;
}

/**
 * Opens a prefix cache: from its file when `persistence` names one that was written for this model and is intact,
 * otherwise empty. `policy` makes a fresh policy each time it is called (a failed restore has told one of blocks it
 * then dropped). The restored cache gets today's `maxBytes`, evicting at once if the file held more.
 */
export function openPrefixCache(options: {
  layout: KvLayout;
  blockTokens: number;
  maxBytes: number;
  policy: () => CachePolicy;
  persistence?: PrefixCachePersistence;
}): OpenedPrefixCache {
  const empty = () =>
    new PrefixCache({
      layout: options.layout,
      blockTokens: options.blockTokens,
      maxBytes: options.maxBytes,
      policy: options.policy(),
    });
  if (!options.persistence) return { cache: empty() };
  const read = readPrefixCacheFile(options.persistence.path, options.persistence);
  if ('absent' in read) return { cache: empty() };
  if ('ignored' in read) return { cache: empty(), ignored: read.ignored };
  try {
    const cache = PrefixCache.deserialize(read.payload, options.policy(), options.layout);
    if (cache.blockTokens !== options.blockTokens)
      return { cache: empty(), ignored: `its blocks hold ${cache.blockTokens} tokens, not ${options.blockTokens}` };
    cache.resize(options.maxBytes);
    const { entries, bytes } = cache.stats;
    return { cache, restored: { blocks: entries, bytes } };
  } catch (err) {
    return { cache: empty(), ignored: (err as Error).message };
  }
}

/** Writes `cache` to its file (atomically); the blocks written and the file's payload bytes. */
export async function persistPrefixCache(
  cache: PrefixCache,
  persistence: PrefixCachePersistence,
): Promise<{ blocks: number; bytes: number }> {
  const { path, ...identity } = persistence;
  const payload = cache.serialize();
  await writePrefixCacheFile(path, identity, payload);
  return { blocks: cache.stats.entries, bytes: payload.byteLength };
}
