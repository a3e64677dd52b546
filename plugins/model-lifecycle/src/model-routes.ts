import { badRequest, type RouteContext, type RouteContribution } from '@nucleus/sdk';
import type { ModelLifecycle } from './model-lifecycle.js';
import { checkBody, validators } from './request-schemas.js';

function body(ctx: RouteContext): unknown {
  return (ctx.request as { body?: unknown }).body ?? {};
}

// `?drainTimeoutMs=` of a DELETE, checked as the swap body's field is.
function drainTimeout(ctx: RouteContext): number | undefined {
  const raw = ctx.query.drainTimeoutMs;
  if (raw === undefined) return undefined;
  const value = Number(raw);
  if (typeof raw !== 'string' || !/^\d+$/.test(raw) || !Number.isSafeInteger(value)) {
    throw badRequest('invalid_query', 'drainTimeoutMs must be a whole number of milliseconds', 'drainTimeoutMs');
  }
  return value;
}

/**
 * The admin model routes, for admins only: list, load (a new `version` of a served LLM loads beside its versions),
 * swap and unload a model, or one version of it (`/admin/models/{name}/versions/{version}`).
 */
export function modelRoutes(lifecycle: ModelLifecycle): RouteContribution[] {
  return [
    { method: 'GET', path: '/admin/models', access: 'admin', handler: () => ({ models: lifecycle.list() }) },
    {
      method: 'POST',
      path: '/admin/models',
      access: 'admin',
      handler: async (ctx) => {
        const request = checkBody(validators.load, body(ctx), 'load request');
        const model = await lifecycle.load(request);
        ctx.status = 201;
        ctx.body = { model };
      },
    },
    {
      method: 'POST',
      path: '/admin/models/:name/swap',
      access: 'admin',
      handler: async (ctx) => {
        const request = checkBody(validators.swap, body(ctx), 'swap request');
        return { model: await lifecycle.swap(ctx.params.name!, request) };
      },
    },
    {
      method: 'POST',
      path: '/admin/models/:name/versions/:version/swap',
      access: 'admin',
      handler: async (ctx) => {
        const request = checkBody(validators.swap, body(ctx), 'swap request');
        return { model: await lifecycle.swap(ctx.params.name!, { ...request, replaces: ctx.params.version! }) };
      },
    },
    {
      method: 'DELETE',
      path: '/admin/models/:name',
      access: 'admin',
      handler: async (ctx) => {
        await lifecycle.unload(ctx.params.name!, drainTimeout(ctx));
        return { unloaded: ctx.params.name };
      },
    },
    {
      method: 'DELETE',
      path: '/admin/models/:name/versions/:version',
      access: 'admin',
      handler: async (ctx) => {
        const { name, version } = ctx.params as { name: string; version: string };
        await lifecycle.unload(name, drainTimeout(ctx), version);
        return { unloaded: name, version };
      },
    },
  ];
}
