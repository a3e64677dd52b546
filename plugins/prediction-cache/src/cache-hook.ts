import type { Hooks, InferenceAnswer, InferenceCall } from '@nucleus/sdk';
import { cacheability } from './cacheable-request.js';
import type { PredictionCache } from './prediction-cache.js';
import { bodyBytes, requestHash } from './request-hash.js';

/** The response header that says how the cache took part: `HIT`, `MISS` (then stored, unless refused) or `BYPASS`. */
export const CACHE_HEADER = 'x-prediction-cache';

/** The plugin's config section (`plugin.prediction-cache`). */
export interface PredictionCacheConfig {
  maxBytes: number;
  ttlMs: number;
  policy: string;
  models: Record<string, { ttlMs?: number }>;
}

/** What the hook needs besides the config. */
export interface CacheHookDeps {
  /** The cache, once its policy is loaded; until then every request bypasses it. */
  cache(): PredictionCache | undefined;
  /** The version requests to `model` go to when they name none, where the model registry knows it. */
  servingVersion(model: string): string | undefined;
  /** Called after a lookup or a store changed `model`'s counters. */
  changed(model: string): void;
}

/**
 * The `aroundInference` hook that answers repeated deterministic requests from the {@link PredictionCache}. The key
 * is the path (which API's body), the routed model and version, and a canonical hash of the hooked body. A request
 * with `Cache-Control: no-cache` is run and its answer stored; one with `no-store` may be answered from the cache but
 * its own answer is not kept.
 */
export class CacheHook implements Hooks {
  constructor(
    private readonly config: PredictionCacheConfig,
    private readonly deps: CacheHookDeps,
  ) {}

  async aroundInference(call: InferenceCall, next: () => Promise<InferenceAnswer>): Promise<InferenceAnswer> {
    const rule = cacheability(call.path, call.body);
    const cache = this.deps.cache();
    const ttlMs = this.config.models[call.model]?.ttlMs ?? this.config.ttlMs;
    // Routes the cache knows nothing of get no header: it never takes part there.
    if (!rule) return next();
    if (!rule.cacheable || !cache || ttlMs <= 0) {
      call.setHeader(CACHE_HEADER, 'BYPASS');
      return next();
    }
    const directives = cacheControl(call.headers['cache-control']);
    const version = call.version ?? this.deps.servingVersion(call.model) ?? '';
    const digest = requestHash(call.body, rule.ignore);
    const hash = typeof digest === 'string' ? digest : await digest;
    const key = `${call.path}\u0000${call.model}\u0000${version}\u0000${hash}`;
    const epoch = cache.epoch(call.model);
    // Counters are reported once per request, after the lookup and the store both (the report is an event per call).
    let changed = false;
    if (directives.noCache) call.setHeader(CACHE_HEADER, 'BYPASS');
    else {
      const found = cache.get(call.model, key);
      if (found.hit) {
        this.deps.changed(call.model);
        call.setHeader(CACHE_HEADER, 'HIT');
        return rule.ignore.includes('id') ? withId(found.body, call.body.id) : found.body;
      }
      changed = true;
      call.setHeader(CACHE_HEADER, 'MISS');
    }
    try {
      const body = await next();
      if (body !== undefined && !directives.noStore) {
        if (cache.store(call.model, key, body, bodyBytes(body), ttlMs, epoch)) changed = true;
      }
      return body;
    } finally {
      if (changed) this.deps.changed(call.model);
    }
  }
}

const NO_DIRECTIVES = Object.freeze({ noCache: false, noStore: false });

// The request directives of a Cache-Control header that the cache obeys.
function cacheControl(header: string | string[] | undefined): { noCache: boolean; noStore: boolean } {
  // Most requests send none: no set or arrays to build for them.
  if (header === undefined) return NO_DIRECTIVES;
  const directives = new Set(
    [header ?? []]
      .flat()
      .flatMap((h) => h.split(','))
      .map((d) => d.trim().toLowerCase()),
  );
  return { noCache: directives.has('no-cache'), noStore: directives.has('no-store') };
}

// A stored v2 answer with this request's `id` (or none), which the key leaves out.
function withId(body: Record<string, unknown>, id: unknown): Record<string, unknown> {
  const { id: _stored, ...rest } = body;
  return id === undefined ? rest : { ...rest, id };
}
