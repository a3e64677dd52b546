import { badRequest, type ModelRegistry, notFound, type RouteContribution } from '@nucleus/sdk';
import type { PolicyStore } from './policy-store.js';
import type { TrafficRouter } from './traffic-router.js';
import { checkPolicy, type Target, type TrafficPolicy } from './traffic-policy.js';

function targets(policy: TrafficPolicy): Target[] {
  if (policy.type === 'weights') return policy.variants;
  if (policy.type === 'canary') return [policy.stable, policy.canary];
  return [policy.primary, policy.shadow];
}

/** 400 `unknown_target` when a target names a model or version the server does not have loaded. */
function checkTargets(model: string, policy: TrafficPolicy, registry: ModelRegistry): void {
  const loaded = registry.list();
  for (const t of targets(policy)) {
    const name = t.model ?? model;
    const found = loaded.find((m) => m.name === name);
    if (!found) {
      throw badRequest(
        'unknown_target',
        `the policy sends requests to model '${name}', which is not loaded (loaded: ${loaded.map((m) => m.name).join(', ') || 'none'})`,
        'policy',
      );
    }
    const versions = found.versions.map((v) => v.version);
    if (t.version !== undefined && !versions.includes(t.version)) {
      throw badRequest(
        'unknown_target',
        `the policy sends requests to version '${t.version}' of model '${name}', which has versions ${versions.join(', ')}; load it first (POST /admin/models)`,
        'policy',
      );
    }
  }
}

/**
 * `GET /admin/traffic` (every policy and its live state) and `PUT`/`DELETE /admin/traffic/{model}`, for admins; with a
 * `store`, each change is also written to the state file.
 */
export function trafficRoutes(
  router: TrafficRouter,
  registry: () => ModelRegistry | undefined,
  store?: PolicyStore,
): RouteContribution[] {
  return [
    {
      method: 'GET',
      path: '/admin/traffic',
      access: 'admin',
      handler: () => ({ ...router.snapshot(), policies: router.policies() }),
    },
    {
      method: 'PUT',
      path: '/admin/traffic/:model',
      access: 'admin',
      handler: (ctx) => {
        const model = ctx.params.model!;
        const policy = checkPolicy((ctx.request as { body?: unknown }).body ?? {});
        const models = registry();
        if (models) checkTargets(model, policy, models);
        router.set(model, policy);
        store?.set(model, policy);
        return { model, policy, status: router.modelStatus(model) };
      },
    },
    {
      method: 'DELETE',
      path: '/admin/traffic/:model',
      access: 'admin',
      handler: (ctx) => {
        const model = ctx.params.model!;
        if (!router.delete(model))
          throw notFound(
            'policy_not_found',
            `model '${model}' has no traffic policy (policies: ${Object.keys(router.policies()).join(', ') || 'none'})`,
          );
        store?.remove(model);
        return { removed: model };
      },
    },
  ];
}
