import {
  callerOf,
  definePlugin,
  ExtensionPoints,
  type PluginContext,
  type GatePass,
  routeAccessOf,
} from '@nucleus/sdk';
import { RateLimitGate, type RateLimitConfig } from './rate-limit-gate.js';

export { type LimitKind, type Limits, RateLimiter, type Subject, type Verdict } from './rate-limiter.js';
export { RateLimitGate, type RateLimitConfig } from './rate-limit-gate.js';
export { TokenBucket } from './token-bucket.js';

const SWEEP_MS = 60_000;

/**
 * Rate limits and quotas on the user routes: token buckets per API key and per client address for requests per
 * minute and LLM tokens per minute, and a cap on streams open at once. The limits are a `requestGate`, which every
 * protocol asks (the `/ws` upgrade, WebSocket and gRPC inference); HTTP requests are judged through it before their
 * body is read (a `preParsing` hook). A refusal is a 429 `rate_limit_error` with `Retry-After`, and every limited
 * answer carries the IETF `RateLimit-Limit`, `RateLimit-Remaining` and `RateLimit-Reset` of its tightest limit.
 * Public and admin routes are not limited, so probes keep answering and an operator can always raise a limit.
 */
export default definePlugin({
  activate(ctx: PluginContext<RateLimitConfig>) {
    // Read per request, so a limit changed at run time (PATCH /admin/config) applies to the next one.
    const gate = new RateLimitGate(ctx.events, () => ctx.configValue(`plugin.${ctx.id}`) as RateLimitConfig);
    const passes = new WeakMap<object, GatePass>();

    const offStart = ctx.events.on('generation.start', (e) => gate.generationStarted(e.requestId));
    const offEnd = ctx.events.on('generation.end', (e) =>
      gate.generationEnded(e.requestId, e.promptTokens + e.completionTokens),
    );
    const sweep = setInterval(() => gate.limiter.sweep(Date.now()), SWEEP_MS).unref();
    ctx.onDispose(() => {
      offStart();
      offEnd();
      clearInterval(sweep);
    });

    ctx.contribute(ExtensionPoints.requestGate, gate, { name: 'rate-limit' });
    ctx.contribute(
      ExtensionPoints.hooks,
      {
        // Not async: a request that passes through costs no frame or promise of its own.
        preParsing: (http, next) => {
          if (routeAccessOf(http) !== 'user') return next();
          const caller = callerOf(http);
          // Nothing to count or to answer with: no pass, headers or listener per request.
          if (gate.unlimited(caller)) return next();
          const pass = gate.admit({
            ...(caller && { caller }),
            address: http.ip,
            protocol: 'http',
            route: http.path,
            ...((http.state as { requestId?: string }).requestId !== undefined && {
              requestId: (http.state as { requestId: string }).requestId,
            }),
          });
          http.set(pass.headers);
          http.res.once('close', pass.release);
          passes.set(http, pass);
          return next();
        },
        // The body is parsed by now: a streamed request holds one of its subjects' streams until its answer ends.
        onRequest: (http, next) => {
          const body = (http.request as { body?: { stream?: unknown } }).body;
          if (body?.stream === true) passes.get(http)?.holdStream();
          return next();
        },
      },
      { name: 'rate-limit' },
    );
  },
});
