import {
  definePlugin,
  ExtensionPoints,
  loadCachePolicy,
  optionalService,
  ServiceRefs,
  type PluginContext,
} from '@nucleus/sdk';
import { CacheHook, type PredictionCacheConfig } from './cache-hook.js';
import { PredictionCache } from './prediction-cache.js';

export { CACHE_HEADER, CacheHook, type CacheHookDeps, type PredictionCacheConfig } from './cache-hook.js';
export { cacheability, type Cacheability } from './cacheable-request.js';
export { PredictionCache, type Lookup, type ModelCacheStats } from './prediction-cache.js';
export { bodyBytes, requestHash } from './request-hash.js';

/** Model lifecycle events after which a model's stored answers may no longer be its answers. */
const INVALIDATING = ['model.loaded', 'model.unloaded', 'model.swapped', 'model.failed'] as const;

/**
 * The prediction cache: an `aroundInference` hook that answers repeated deterministic requests (tensor models,
 * embeddings, greedy or seeded generations) from memory, bounded in bytes and evicted by the `cachePolicy` the config
 * names, each answer kept for its model's time to live and dropped when the model is swapped, reloaded or unloaded.
 */
export default definePlugin({
  deps: { models: optionalService(ServiceRefs.models) },
  async activate(ctx: PluginContext<PredictionCacheConfig>, { models }) {
    const config = ctx.config;
    let cache: PredictionCache | undefined;
    const report = (model: string) => {
      if (!cache) return;
      ctx.events.emit('cache.stats', {
        name: 'prediction',
        model,
        ...cache.stats(model),
        capacityBytes: cache.maxBytes,
      });
    };

    // The policy is a contribution of another plugin, which may activate after this one: the cache opens once it is there.
    const policies = ctx.extensionPoint(ExtensionPoints.cachePolicy);
    let opening: Promise<void> | undefined;
    const open = (): Promise<void> | undefined => {
      const spec = policies.find(config.policy)?.value;
      if (cache || opening || !spec) return opening;
      opening = loadCachePolicy(spec).then(
        (policy) => {
          cache = new PredictionCache(config.maxBytes, policy);
          ctx.logger.info(
            { policy: config.policy, maxBytes: config.maxBytes, ttlMs: config.ttlMs },
            'prediction cache on',
          );
        },
        (err: unknown) => {
          ctx.logger.error({ policy: config.policy, err: (err as Error).message }, 'prediction cache off');
        },
      );
      return opening;
    };
    await open();
    if (!cache && !opening)
      ctx.logger.warn(
        { policy: config.policy },
        `no plugin contributes a cache policy named '${config.policy}' yet (cache-lru provides 'lru'); requests bypass the prediction cache until one does`,
      );
    ctx.onDispose(policies.onChange((change) => void (change === 'added' && open())));

    for (const type of INVALIDATING) {
      ctx.onDispose(
        ctx.events.on(type, (e) => {
          if (!cache) return;
          const dropped = cache.invalidate(e.model);
          report(e.model);
          if (dropped > 0) ctx.logger.debug({ model: e.model, dropped, event: type }, 'prediction cache invalidated');
        }),
      );
    }

    const hook = new CacheHook(config, {
      cache: () => cache,
      servingVersion: (model) => {
        try {
          if (models?.defaultVersion) return models.defaultVersion(model);
          return models?.get(model).defaultVersion;
        } catch {
          // An unknown model: the route answers 404, and nothing is stored.
          return undefined;
        }
      },
      changed: report,
    });
    ctx.contribute(ExtensionPoints.hooks, hook, { name: 'prediction-cache' });
    ctx.onDispose(() => cache?.clear());
  },
});
