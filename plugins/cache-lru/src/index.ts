import { definePlugin, ExtensionPoints } from '@nucleus/sdk';
import { LRU_POLICY } from './lru-policy.js';

export { LRU_POLICY, LruPolicy, default as createLruPolicy } from './lru-policy.js';

/** Contributes the `lru` cache policy; caches choose a policy by name (`cache.prefix.policy`). */
export default definePlugin({
  activate(ctx) {
    ctx.contribute(ExtensionPoints.cachePolicy, LRU_POLICY);
  },
});
