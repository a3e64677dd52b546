import {
  type Caller,
  type EventBus,
  type GatePass,
  type GateRequest,
  NucleusError,
  type RequestGate,
} from '@nucleus/sdk';
import { type LimitKind, type Limits, RateLimiter, type Subject } from './rate-limiter.js';

/** The rate-limit plugin's config section (`plugin.rate-limit`), as its schema in package.json defines it. */
export interface RateLimitConfig {
  /** Limits of every API key, unless its `auth.keys[].limits` says otherwise. */
  default: Partial<Limits>;
  /** Limits of every client address, keyed or not. */
  perAddress: Partial<Limits>;
}

const NONE: Limits = { requestsPerMinute: null, tokensPerMinute: null, concurrentStreams: null };
const OPEN: GatePass = Object.freeze({ headers: Object.freeze({}), holdStream() {}, release() {} });

const limited = (limits: Limits): boolean =>
  limits.requestsPerMinute !== null || limits.tokensPerMinute !== null || limits.concurrentStreams !== null;

// A request's generations, whose tokens are charged to its subjects when each ends; forgotten once the request is
// released and no generation of it is running.
interface Tracked {
  subjects: readonly Subject[];
  key: string | undefined;
  running: number;
  open: number;
}

/**
 * The limits as a {@link RequestGate}: every protocol (the HTTP hooks, the `/ws` upgrade, WebSocket and gRPC
 * inference) admits its requests here, so one key's budget is one budget whatever it calls by. Limits are read at
 * each admission (`settings`, the caller's own `limits`), so a change at run time applies to the next request.
 */
export class RateLimitGate implements RequestGate {
  readonly limiter = new RateLimiter();
  private readonly tracked = new Map<string, Tracked>();
  private perAddress?: { config: RateLimitConfig; limits: Limits; limited: boolean };

  constructor(
    private readonly events: EventBus,
    private readonly settings: () => RateLimitConfig,
  ) {}

  /** Lets a request through, or throws 429 with `retry-after` and the `ratelimit-*` headers. */
  admit(request: GateRequest): GatePass {
    const subjects = this.subjectsOf(request.caller, request.address);
    if (subjects.length === 0) return OPEN;
    const key = request.caller?.name;
    const verdict = this.limiter.admit(subjects, Date.now());
    if (!verdict.ok) {
      this.decided(key, false, verdict.limit, verdict.subject.scope);
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
    this.decided(key, true);
    let entry: Tracked | undefined;
    if (request.requestId !== undefined && subjects.some((s) => s.limits.tokensPerMinute !== null)) {
      entry = this.tracked.get(request.requestId) ?? { subjects, key, running: 0, open: 0 };
      entry.open++;
      this.tracked.set(request.requestId, entry);
    }
    let stream: (() => void) | undefined;
    let released = false;
    const pass: GatePass = {
      headers: verdict.headers,
      holdStream: () => {
        if (stream || released) return;
        const opened = this.limiter.openStream(subjects);
        if ('refused' in opened) {
          this.decided(key, false, 'streams', opened.refused.scope);
          const whose = opened.refused.scope === 'key' ? 'this API key' : 'this client address';
          throw new NucleusError(
            429,
            'too_many_streams',
            `${whose} may hold ${opened.cap} streamed request${opened.cap === 1 ? '' : 's'} open at once; retry when one ends`,
            { headers: { 'retry-after': '1' } },
          );
        }
        stream = opened.release;
      },
      release: () => {
        if (released) return;
        released = true;
        stream?.();
        if (entry && request.requestId !== undefined) {
          entry.open--;
          this.forget(request.requestId, entry);
        }
      },
    };
    if (request.stream) {
      try {
        pass.holdStream();
      } catch (err) {
        pass.release();
        throw err;
      }
    }
    return pass;
  }

  /**
   * Whether no limit applies to `caller` (or to an anonymous request) from any address: its pass would be open, with
   * no headers and no decision to report, so an HTTP request need not be admitted at all.
   */
  unlimited(caller: Caller | undefined): boolean {
    const config = this.settings();
    if (caller && limited({ ...NONE, ...config.default, ...caller.limits })) return false;
    return !this.addressLimits(config).limited;
  }

  /** A generation of a request began: its tokens are charged when it ends, even after the request is released. */
  generationStarted(requestId: string): void {
    const entry = this.tracked.get(requestId);
    if (entry) entry.running++;
  }

  /** A generation ended: its prompt and generated tokens are charged to the request's subjects. */
  generationEnded(requestId: string, tokens: number): void {
    const entry = this.tracked.get(requestId);
    if (!entry) return;
    this.limiter.charge(entry.subjects, tokens, Date.now());
    this.events.emit('ratelimit.tokens', { ...(entry.key === undefined ? {} : { key: entry.key }), tokens });
    entry.running = Math.max(0, entry.running - 1);
    this.forget(requestId, entry);
  }

  private subjectsOf(caller: Caller | undefined, address: string): Subject[] {
    const config = this.settings();
    const subjects: Subject[] = [];
    if (caller) {
      const limits = { ...NONE, ...config.default, ...caller.limits };
      if (limited(limits)) subjects.push({ id: `key:${caller.name}`, scope: 'key', limits });
    }
    const perAddress = this.addressLimits(config);
    if (perAddress.limited) subjects.push({ id: `address:${address}`, scope: 'address', limits: perAddress.limits });
    return subjects;
  }

  // The per-address limits, worked out again only when the settings change (a patch replaces them), not per request.
  private addressLimits(config: RateLimitConfig): { limits: Limits; limited: boolean } {
    if (this.perAddress?.config !== config) {
      const limits = { ...NONE, ...config.perAddress };
      this.perAddress = { config, limits, limited: limited(limits) };
    }
    return this.perAddress;
  }

  private forget(requestId: string, entry: Tracked): void {
    if (entry.running === 0 && entry.open === 0 && this.tracked.get(requestId) === entry)
      this.tracked.delete(requestId);
  }

  private decided(key: string | undefined, allowed: boolean, limit?: LimitKind, scope?: Subject['scope']): void {
    this.events.emit('ratelimit.decision', {
      ...(key === undefined ? {} : { key }),
      allowed,
      ...(limit !== undefined && { limit }),
      ...(scope !== undefined && { scope }),
    });
  }
}
