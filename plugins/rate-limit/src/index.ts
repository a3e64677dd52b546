import {
  callerOf,
  definePlugin,
  ExtensionPoints,
  NucleusError,
  type PluginContext,
  type RouteContext,
  routeAccessOf,
} from '@nucleus/sdk';
import { type Limits, RateLimiter, type Subject } from './rate-limiter.js';

export { type LimitKind, type Limits, RateLimiter, type Subject, type Verdict } from './rate-limiter.js';
export { TokenBucket } from './token-bucket.js';

/** The rate-limit plugin's config section (`plugin.rate-limit`), as its schema in package.json defines it. */
export interface RateLimitConfig {
  /** Limits of every API key, unless its `auth.keys[].limits` says otherwise. */
  default: Partial<Limits>;
  /** Limits of every client address, keyed or not. */
  perAddress: Partial<Limits>;
}

const NONE: Limits = { requestsPerMinute: null, tokensPerMinute: null, concurrentStreams: null };
const SWEEP_MS = 60_000;

const limited = (limits: Limits): boolean =>
  limits.requestsPerMinute !== null || limits.tokensPerMinute !== null || limits.concurrentStreams !== null;

// A request's generations, whose tokens are charged to its subjects when each ends; forgotten once the response is
// closed and no generation of it is running.
interface Tracked {
  subjects: readonly Subject[];
  key: string | undefined;
  running: number;
  open: number;
}

/**
 * Rate limits and quotas on the user routes: token buckets per API key and per client address for requests per
 * minute and LLM tokens per minute, and a cap on streams open at once. Requests are judged before their body is read
 * (a `preParsing` hook); a refusal is a 429 `rate_limit_error` with `Retry-After`, and every limited answer carries
 * the IETF `RateLimit-Limit`, `RateLimit-Remaining` and `RateLimit-Reset` of its tightest limit. Public and admin
 * routes are not limited, so probes keep answering and an operator can always raise a limit.
 */
export default definePlugin({
  activate(ctx: PluginContext<RateLimitConfig>) {
    const limiter = new RateLimiter();
    const tracked = new Map<string, Tracked>();
    // Read per request, so a limit changed at run time (PATCH /admin/config) applies to the next one.
    const settings = () => ctx.configValue(`plugin.${ctx.id}`) as RateLimitConfig;
    const judged = new WeakMap<object, Subject[]>();

    const subjectsOf = (http: RouteContext): Subject[] => {
      if (routeAccessOf(http) !== 'user') return [];
      const config = settings();
      const caller = callerOf(http);
      const subjects: Subject[] = [];
      if (caller) {
        const limits = { ...NONE, ...config.default, ...caller.limits };
        if (limited(limits)) subjects.push({ id: `key:${caller.name}`, scope: 'key', limits });
      }
      const perAddress = { ...NONE, ...config.perAddress };
      if (limited(perAddress)) subjects.push({ id: `address:${http.ip}`, scope: 'address', limits: perAddress });
      return subjects;
    };

    const forget = (requestId: string, entry: Tracked): void => {
      if (entry.running === 0 && entry.open === 0 && tracked.get(requestId) === entry) tracked.delete(requestId);
    };
    const offStart = ctx.events.on('generation.start', (e) => {
      const entry = tracked.get(e.requestId);
      if (entry) entry.running++;
    });
    const offEnd = ctx.events.on('generation.end', (e) => {
      const entry = tracked.get(e.requestId);
      if (!entry) return;
      const tokens = e.promptTokens + e.completionTokens;
      limiter.charge(entry.subjects, tokens, Date.now());
      ctx.events.emit('ratelimit.tokens', { ...(entry.key === undefined ? {} : { key: entry.key }), tokens });
      entry.running = Math.max(0, entry.running - 1);
      forget(e.requestId, entry);
    });
    const sweep = setInterval(() => limiter.sweep(Date.now()), SWEEP_MS).unref();
    ctx.onDispose(() => {
      offStart();
      offEnd();
      clearInterval(sweep);
    });

    ctx.contribute(
      ExtensionPoints.hooks,
      {
        preParsing: async (http, next) => {
          const subjects = subjectsOf(http as unknown as RouteContext);
          if (subjects.length === 0) return next();
          const key = callerOf(http)?.name;
          const named = key === undefined ? {} : { key };
          const verdict = limiter.admit(subjects, Date.now());
          http.set(verdict.headers);
          if (!verdict.ok) {
            ctx.events.emit('ratelimit.decision', {
              ...named,
              allowed: false,
              limit: verdict.limit,
              scope: verdict.subject.scope,
            });
            const whose = verdict.subject.scope === 'key' ? 'this API key' : 'this client address';
            const per = verdict.limit === 'requests' ? 'requests' : 'LLM tokens (prompt plus generated)';
            const limit =
              verdict.limit === 'requests'
                ? verdict.subject.limits.requestsPerMinute
                : verdict.subject.limits.tokensPerMinute;
            throw new NucleusError(
              429,
              verdict.limit === 'requests' ? 'rate_limit_exceeded' : 'token_quota_exceeded',
              `${whose} is limited to ${limit} ${per} per minute; retry in ${verdict.retryAfterS} s`,
              { headers: verdict.headers },
            );
          }
          ctx.events.emit('ratelimit.decision', { ...named, allowed: true });
          judged.set(http, subjects);
          const requestId = (http.state as { requestId?: string }).requestId;
          if (requestId && subjects.some((s) => s.limits.tokensPerMinute !== null)) {
            const entry = tracked.get(requestId) ?? { subjects, key, running: 0, open: 0 };
            entry.open++;
            tracked.set(requestId, entry);
            http.res.once('close', () => {
              entry.open--;
              forget(requestId, entry);
            });
          }
          await next();
        },
        // The body is parsed by now: a streamed request holds one of its subjects' streams until its answer ends.
        onRequest: async (http, next) => {
          const subjects = judged.get(http);
          const body = (http.request as { body?: { stream?: unknown } }).body;
          if (!subjects || body?.stream !== true) return next();
          const opened = limiter.openStream(subjects);
          if ('refused' in opened) {
            const key = callerOf(http)?.name;
            ctx.events.emit('ratelimit.decision', {
              ...(key === undefined ? {} : { key }),
              allowed: false,
              limit: 'streams',
              scope: opened.refused.scope,
            });
            const whose = opened.refused.scope === 'key' ? 'this API key' : 'this client address';
            throw new NucleusError(
              429,
              'too_many_streams',
              `${whose} may hold ${opened.cap} streamed request${opened.cap === 1 ? '' : 's'} open at once; retry when one ends`,
              { headers: { 'retry-after': '1' } },
            );
          }
          http.res.once('close', opened.release);
          await next();
        },
      },
      { name: 'rate-limit' },
    );
  },
});
