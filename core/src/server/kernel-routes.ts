import type { RouteContribution } from '@nucleus/sdk';
import { badRequest } from '@nucleus/sdk';
import type { Kernel } from '../kernel/kernel.js';
import { withoutPaths } from './without-paths.js';
import { heldUses } from './held-uses.js';

const LIVE = {
  description: 'the process answers',
  schema: { type: 'object', properties: { status: { const: 'ok' } } },
};

// Documents the body only: the handler checks it (an object) and the config store checks each key against its schema.
const CONFIG_PATCH = {
  type: 'object',
  description: 'dotted keys or nested objects, e.g. {"queue.highWatermark": 200}',
  minProperties: 1,
};

/** The kernel's own routes: liveness, readiness and the admin API. */
export function kernelRoutes(kernel: Kernel): RouteContribution[] {
  const { plugins, health, config } = kernel;
  return [
    // Liveness: the process answers. `/livez` is the name Kubernetes users expect.
    ...['/health', '/livez'].map(
      (path): RouteContribution => ({
        method: 'GET',
        path,
        access: 'public',
        doc: { summary: 'Liveness: the process answers', tags: ['health'], responses: { 200: LIVE } },
        handler: () => ({ status: 'ok' }),
      }),
    ),
    // Readiness: 200 while every configured model can be served (degraded included), 503 otherwise. `/readyz` as well.
    ...['/ready', '/readyz'].map(
      (path): RouteContribution => ({
        method: 'GET',
        path,
        access: 'public',
        doc: {
          summary: 'Readiness: 200 while every configured model can be served, 503 otherwise',
          tags: ['health'],
          responses: { 200: { description: 'ready or degraded, with the conditions that say why' } },
        },
        handler: (ctx) => {
          // Public: a reason says what failed, not where the files are (the log has the whole reason).
          const full = health.report();
          const report = {
            ...full,
            conditions: full.conditions.map((c) => ({ ...c, reason: withoutPaths(c.reason) })),
          };
          ctx.status = report.ready ? 200 : 503;
          ctx.body = report.ready
            ? report
            : {
                ...report,
                error: {
                  message: `not ready (${report.status})${report.conditions.length ? `: ${report.conditions.map((c) => `${c.key}: ${c.reason}`).join('; ')}` : ''}`,
                  type: 'unavailable_error',
                  code: `server_${report.status}`,
                },
              };
        },
      }),
    ),
    {
      method: 'GET',
      path: '/admin/plugins',
      access: 'admin',
      doc: { summary: 'Every plugin: id, version, state, what it provides, why it failed', tags: ['admin'] },
      handler: () => ({ plugins: plugins.list() }),
    },
    {
      method: 'GET',
      path: '/admin/plugins/:id',
      access: 'admin',
      doc: { summary: 'One plugin', tags: ['admin'] },
      handler: (ctx) => plugins.get(ctx.params.id!),
    },
    {
      method: 'POST',
      path: '/admin/plugins/:id/enable',
      access: 'admin',
      doc: { summary: 'Enable and activate a plugin', tags: ['admin'] },
      handler: (ctx) => plugins.enable(ctx.params.id!),
    },
    {
      method: 'POST',
      path: '/admin/plugins/:id/disable',
      access: 'admin',
      doc: { summary: 'Drain and deactivate a plugin; its routes go away', tags: ['admin'] },
      // The hooks this request passed through stay held until it ends; the drain does not wait for those.
      handler: (ctx) => plugins.disable(ctx.params.id!, heldUses(ctx)),
    },
    {
      method: 'POST',
      path: '/admin/plugins/:id/reload',
      access: 'admin',
      doc: {
        summary: 'Load a plugin again from disk and swap it in; the old one stays if the new one fails',
        tags: ['admin'],
      },
      handler: (ctx) => plugins.reload(ctx.params.id!),
    },
    {
      method: 'GET',
      path: '/admin/extensions',
      access: 'admin',
      doc: { summary: 'Extension points and their contributions', tags: ['admin'] },
      handler: () => ({ extensionPoints: kernel.extensions.describe() }),
    },
    {
      method: 'GET',
      path: '/admin/config',
      access: 'admin',
      doc: {
        summary: 'The effective config (secrets redacted), where each key came from, runtime keys',
        tags: ['admin'],
      },
      handler: () => ({
        config: config.redacted(),
        sources: Object.fromEntries(config.sources()),
        runtimeKeys: config.runtimeKeys(),
      }),
    },
    {
      method: 'PATCH',
      path: '/admin/config',
      access: 'admin',
      doc: {
        summary: 'Change runtime-adjustable config keys without a restart',
        tags: ['admin'],
        body: CONFIG_PATCH,
      },
      handler: (ctx) => {
        const body = (ctx.request as { body?: unknown }).body;
        if (!body || typeof body !== 'object' || Array.isArray(body)) {
          throw badRequest(
            'invalid_body',
            'send a JSON object of changes, e.g. {"queue.highWatermark": 200} or {"queue": {"highWatermark": 200}}',
          );
        }
        // The audit trail names the keys a change sets (those asked for, when it is refused), never their values.
        ctx.state.auditTarget = Object.keys(body).join(',');
        const changed = config.patch(body as Record<string, unknown>, { kind: 'runtime', name: 'PATCH /admin/config' });
        if (changed.length > 0) ctx.state.auditTarget = changed.map((c) => c.path).join(',');
        const shown = changed.map((c) => ({
          ...c,
          value: config.redactedValue(c.path, c.value),
          previous: config.redactedValue(c.path, c.previous),
        }));
        return { changed: shown, config: config.redacted() };
      },
    },
  ];
}
