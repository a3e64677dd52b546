import type { EventBus } from '@nucleus/sdk';
import type { Context } from 'koa';

// What a route's method does when its path ends in a parameter or a collection.
const VERBS: Record<string, string> = {
  GET: 'read',
  HEAD: 'read',
  POST: 'create',
  PUT: 'set',
  PATCH: 'update',
  DELETE: 'delete',
};

/**
 * An admin route said as `resource.verb`: `POST /admin/plugins/:id/enable` is `plugins.enable`,
 * `DELETE /admin/models/:name/versions/:version` is `models.delete`, `PATCH /admin/config` is `config.update`,
 * `POST /v2/repository/models/:model/load` is `repository.models.load`. Derived from the route, so a plugin's admin
 * route is named without the plugin saying anything.
 */
export function adminActionOf(method: string, route: string): string {
  const segments = route.split('/').filter((s) => s !== '' && s !== 'admin' && s !== 'v2');
  const literals = segments.filter((s) => !s.startsWith(':') && s !== 'versions');
  const last = segments.at(-1);
  // A trailing word after the resource is the verb (`…/:id/reload`, `/v2/repository/index`).
  if (method === 'POST' && literals.length >= 2 && last !== undefined && !last.startsWith(':'))
    return literals.join('.');
  return [...literals, VERBS[method] ?? method.toLowerCase()].join('.');
}

/** What a handler may name as its action's target when the route's parameters do not say it (`ctx.state.auditTarget`). */
function targetOf(ctx: Context): string | undefined {
  const named = (ctx.state as { auditTarget?: unknown }).auditTarget;
  if (typeof named === 'string' && named !== '') return named;
  const params = Object.values((ctx as { params?: Record<string, string> }).params ?? {});
  if (params.length > 0) return params.join('/');
  const body = (ctx.request as { body?: { name?: unknown } }).body;
  return typeof body?.name === 'string' ? body.name : undefined;
}

/**
 * Reports a finished request to the audit trail's events: `admin.action` for a request to an admin route that passed
 * its key check, `auth.refused` for one the key check refused. `key` is the key's label (name or role), never the key.
 */
export function emitAuditEvents(ctx: Context, events: EventBus, key: string | undefined, durationMs: number): void {
  const state = ctx.state as { requestId: string; access?: string; caller?: unknown; route?: string };
  const refused = (ctx.status === 401 || ctx.status === 403) && state.caller === undefined;
  // Most requests are neither: nothing to work out for them.
  if (!refused && (state.access !== 'admin' || state.caller === undefined)) return;
  const address = ctx.request.socket?.remoteAddress ?? ctx.ip;
  const body = ctx.body as { error?: { code?: string } } | undefined;
  // The error handler's code, whatever shape an API gave the body.
  const errorCode = ctx.status >= 400 ? ((ctx.state.errorCode as string | undefined) ?? body?.error?.code) : undefined;
  const named = key === undefined ? {} : { key };
  if (refused) {
    events.emit('auth.refused', {
      requestId: state.requestId,
      ...named,
      address,
      method: ctx.method,
      path: ctx.path,
      status: ctx.status,
      ...(errorCode !== undefined && { errorCode }),
    });
    return;
  }
  const route = state.route ?? ctx.path;
  const target = targetOf(ctx);
  events.emit('admin.action', {
    requestId: state.requestId,
    ...named,
    address,
    action: adminActionOf(ctx.method, route),
    method: ctx.method,
    route,
    ...(target !== undefined && { target }),
    status: ctx.status,
    outcome: ctx.status < 400 ? 'ok' : 'failed',
    ...(errorCode !== undefined && { errorCode }),
    durationMs,
  });
}
