import type { CachePolicy, CachePolicyFactory, CachePolicySpec } from './contributions.js';

/**
 * A fresh instance of a contributed cache policy, made the way a worker thread makes its own: import the spec's
 * module and call its default export with the spec's options. Throws naming the policy when the module does not
 * make one.
 */
export async function loadCachePolicy(spec: CachePolicySpec): Promise<CachePolicy> {
  const imported = (await import(spec.module)) as { default?: unknown };
  if (typeof imported.default !== 'function')
    throw new Error(`the '${spec.name}' cache policy: ${spec.module} has no default export that creates a policy`);
  const policy = (imported.default as CachePolicyFactory)(spec.options ?? {}) as Partial<CachePolicy> | undefined;
  for (const method of ['onInsert', 'onAccess', 'onRemove', 'victim'] as const) {
    if (typeof policy?.[method] !== 'function')
      throw new Error(`the '${spec.name}' cache policy from ${spec.module} has no ${method}()`);
  }
  return policy as CachePolicy;
}
