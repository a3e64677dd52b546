import { performance } from 'node:perf_hooks';
import type { EventBus, NucleusEvents } from '@nucleus/sdk';
import type { Context, Next } from 'koa';
import { emitAuditEvents } from './admin-audit.js';
import type { Authenticator } from './auth.js';
import type { ErrorResponder } from './error-middleware.js';
import { requestIdOf } from './request-id.js';
import type { RequestLogger } from './request-logger.js';

/** What the front of the server needs for its per-request bookkeeping. */
export interface RequestFrontOptions {
  events: EventBus;
  logs: RequestLogger;
  auth: Authenticator;
  /** Whether bearer tokens are verified as JWTs (`auth.jwt`): only then is there anything to wait for before the key. */
  jwt: boolean;
  errors: ErrorResponder;
  /** Throws for a request the server takes no part of now (no Host, starting, draining); its error is answered. */
  admit(ctx: Context): void;
}

/**
 * The per-request bookkeeping at the front of every request, as one middleware rather than a step each (every step of
 * Koa's chain is a bound function, a promise and an async frame per request, for a few lines of work): the request
 * id (the client's `x-request-id` when sane, else a new one, echoed on the answer), the request's logger, the
 * `request.start` and `request.end` events with the key's holder, the audit events, the debug line, and the one place
 * where errors thrown below become answers.
 */
export function requestFront(options: RequestFrontOptions): (ctx: Context, next: Next) => Promise<void> {
  const { events, logs, auth, jwt, errors, admit } = options;
  return async (ctx: Context, next: Next): Promise<void> => {
    const requestId = requestIdOf(ctx.req);
    ctx.state.requestId = requestId;
    ctx.res.setHeader('x-request-id', requestId);
    const logged = logs.begin(ctx);
    const started = performance.now();
    if (jwt) await auth.verifyToken(ctx);
    // The key is looked up here, not only at the route, so the request's events say whose they are (/ws shows a user
    // key its own requests only).
    const holder = auth.identify(ctx);
    const tenant = holder?.tenancy.tenant;
    const method = ctx.method;
    const path = ctx.path;
    // Built without spreads: two events for every request, with up to two optional fields.
    const start: NucleusEvents['request.start'] = { requestId, method, path };
    if (tenant) start.tenant = tenant;
    if (holder) start.key = holder.label;
    events.emit('request.start', start);
    try {
      try {
        admit(ctx);
        await next();
        errors.unanswered(ctx);
      } catch (err) {
        errors.answer(ctx, err);
      }
    } finally {
      const status = ctx.status;
      // Set by the error answer, whatever shape the body has; a route that answers an error itself leaves it here.
      const errorCode =
        status >= 400
          ? ((ctx.state.errorCode as string | undefined) ??
            (ctx.body as { error?: { code?: string } } | undefined)?.error?.code)
          : undefined;
      const durationMs = performance.now() - started;
      const end: NucleusEvents['request.end'] = {
        requestId,
        method,
        path,
        route: (ctx.state.route as string | undefined) ?? 'unmatched',
        status,
        durationMs,
      };
      if (tenant) end.tenant = tenant;
      if (errorCode) end.errorCode = errorCode;
      events.emit('request.end', end);
      // Admin actions and refused keys, for the audit trail: at the edge, so no route can forget to report one.
      emitAuditEvents(ctx, events, holder?.label, durationMs);
      if (logged) logs.end(ctx, started);
    }
  };
}
