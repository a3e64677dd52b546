import { badRequest, type RouteContext, type RouteContribution } from '@nucleus/sdk';
import type { ModelLifecycle } from './model-lifecycle.js';
import { checkBody, LOAD_SCHEMA, SWAP_SCHEMA, validators } from './request-schemas.js';

const DRAIN_QUERY = {
  drainTimeoutMs: {
    schema: { type: 'integer', minimum: 0 },
    description: 'how long requests in flight may take to finish, in milliseconds',
  },
};

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
    {
      method: 'GET',
      path: '/admin/models',
      access: 'admin',
      doc: { summary: 'Every model and version: state, backend, replicas, traffic', tags: ['admin'] },
      handler: () => ({ models: lifecycle.list() }),
    },
    {
      method: 'POST',
      path: '/admin/models',
      access: 'admin',
      doc: {
        summary: 'Load a model (or a new version of a served one)',
        tags: ['admin'],
        body: LOAD_SCHEMA,
        responses: { 201: { description: 'loaded' } },
      },
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
      doc: { summary: "Swap a model's weights with no downtime", tags: ['admin'], body: SWAP_SCHEMA },
      handler: async (ctx) => {
        const request = checkBody(validators.swap, body(ctx), 'swap request');
        return { model: await lifecycle.swap(ctx.params.name!, request) };
      },
    },
    {
      method: 'POST',
      path: '/admin/models/:name/versions/:version/swap',
      access: 'admin',
      doc: { summary: 'Swap one version of a model', tags: ['admin'], body: SWAP_SCHEMA },
      handler: async (ctx) => {
        const request = checkBody(validators.swap, body(ctx), 'swap request');
        return { model: await lifecycle.swap(ctx.params.name!, { ...request, replaces: ctx.params.version! }) };
      },
    },
    {
      method: 'DELETE',
      path: '/admin/models/:name',
      access: 'admin',
      doc: { summary: 'Drain and unload a model', tags: ['admin'], query: DRAIN_QUERY },
      handler: async (ctx) => {
        await lifecycle.unload(ctx.params.name!, drainTimeout(ctx));
        return { unloaded: ctx.params.name };
      },
    },
    {
      method: 'DELETE',
      path: '/admin/models/:name/versions/:version',
      access: 'admin',
      doc: { summary: 'Drain and unload one version of a model', tags: ['admin'], query: DRAIN_QUERY },
      handler: async (ctx) => {
        const { name, version } = ctx.params as { name: string; version: string };
        await lifecycle.unload(name, drainTimeout(ctx), version);
        return { unloaded: name, version };
      },
    },
  ];
}
