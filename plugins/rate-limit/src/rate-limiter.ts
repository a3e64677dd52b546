import { TokenBucket } from './token-bucket.js';

/** The limits on one subject; null means none. */
export interface Limits {
  requestsPerMinute: number | null;
  tokensPerMinute: number | null;
  concurrentStreams: number | null;
}

/** Something limits apply to: an API key or a client address. */
export interface Subject {
  /** `key:<name>` or `address:<ip>`. */
  readonly id: string;
  readonly scope: 'key' | 'address';
  readonly limits: Limits;
}

/** Which limit refused a request. */
export type LimitKind = 'requests' | 'tokens' | 'streams';

/** The IETF `RateLimit-*` headers of the tightest limit, plus `Retry-After` when refused. */
export type RateLimitHeaders = Record<string, string>;

/** What {@link RateLimiter.admit} decided. */
export type Verdict =
  | { ok: true; headers: RateLimitHeaders }
  | { ok: false; headers: RateLimitHeaders; limit: LimitKind; subject: Subject; retryAfterS: number };

interface State {
  limits: Limits;
  requests?: TokenBucket;
  tokens?: TokenBucket;
  streams: number;
}

interface Reading {
  limit: number;
  remaining: number;
  resetS: number;
}

const seconds = (ms: number): number => Math.max(1, Math.ceil(ms / 1000));

/**
 * Token buckets per subject: requests per minute, LLM tokens per minute (charged when known, refusing while the
 * bucket is empty or in debt) and streams open at once. A subject whose buckets are full and that holds no stream
 * carries no information, so {@link sweep} drops it: memory follows the subjects active in the last minute.
 */
export class RateLimiter {
  private readonly states = new Map<string, State>();

  /** Lets a request through, taking one from each request bucket, or refuses it without taking anything. */
  admit(subjects: readonly Subject[], now: number): Verdict {
    const readings: Reading[] = [];
    for (const subject of subjects) {
      const state = this.state(subject);
      const { requestsPerMinute: rpm, tokensPerMinute: tpm } = subject.limits;
      if (rpm !== null) {
        state.requests ??= new TokenBucket(rpm, now);
        const level = state.requests.levelAt(rpm, now);
        if (level < 1) return this.refuse(subject, 'requests', rpm, level, state.requests.msUntil(1, rpm), now);
      }
      if (tpm !== null) {
        state.tokens ??= new TokenBucket(tpm, now);
        const level = state.tokens.levelAt(tpm, now);
        if (level <= 0) return this.refuse(subject, 'tokens', tpm, level, state.tokens.msUntil(1, tpm), now);
      }
    }
    for (const subject of subjects) {
      const state = this.state(subject);
      const { requestsPerMinute: rpm, tokensPerMinute: tpm } = subject.limits;
      if (rpm !== null && state.requests) {
        state.requests.take(1, rpm, now);
        readings.push(this.reading(state.requests, rpm, now));
      }
      if (tpm !== null && state.tokens) readings.push(this.reading(state.tokens, tpm, now));
    }
    return { ok: true, headers: headersOf(tightest(readings)) };
  }

  /** Charges LLM tokens to the subjects' token buckets, into debt if need be. */
  charge(subjects: readonly Subject[], tokens: number, now: number): void {
    for (const subject of subjects) {
      const tpm = subject.limits.tokensPerMinute;
      if (tpm === null) continue;
      const state = this.state(subject);
      state.tokens ??= new TokenBucket(tpm, now);
      state.tokens.take(tokens, tpm, now);
    }
  }

  /** Opens a stream for each subject, or names the first whose cap is reached (opening none). */
  openStream(subjects: readonly Subject[]): { release: () => void } | { refused: Subject; cap: number } {
    for (const subject of subjects) {
      const cap = subject.limits.concurrentStreams;
      if (cap !== null && this.state(subject).streams >= cap) return { refused: subject, cap };
    }
    const held = subjects.filter((s) => s.limits.concurrentStreams !== null).map((s) => this.state(s));
    for (const state of held) state.streams++;
    let released = false;
    return {
      release: () => {
        if (released) return;
        released = true;
        for (const state of held) state.streams--;
      },
    };
  }

  /** Streams open for a subject now. */
  streams(id: string): number {
    return this.states.get(id)?.streams ?? 0;
  }

  /** Forgets subjects whose buckets have refilled and that hold no stream. */
  sweep(now: number): void {
    for (const [id, state] of this.states) {
      if (state.streams > 0) continue;
      const { requestsPerMinute: rpm, tokensPerMinute: tpm } = state.limits;
      const full = (bucket: TokenBucket | undefined, capacity: number | null): boolean =>
        !bucket || capacity === null || bucket.levelAt(capacity, now) >= capacity;
      if (full(state.requests, rpm) && full(state.tokens, tpm)) this.states.delete(id);
    }
  }

  /** Subjects tracked now. */
  get size(): number {
    return this.states.size;
  }

  private state(subject: Subject): State {
    let state = this.states.get(subject.id);
    if (!state) {
      state = { limits: subject.limits, streams: 0 };
      this.states.set(subject.id, state);
    }
    state.limits = subject.limits;
    return state;
  }

  private refuse(subject: Subject, limit: LimitKind, capacity: number, level: number, waitMs: number, now: number) {
    const retryAfterS = seconds(waitMs);
    const bucket = limit === 'requests' ? this.state(subject).requests! : this.state(subject).tokens!;
    const reading = { ...this.reading(bucket, capacity, now), remaining: Math.max(0, Math.floor(level)) };
    return {
      ok: false as const,
      headers: { ...headersOf(reading), 'retry-after': String(retryAfterS) },
      limit,
      subject,
      retryAfterS,
    };
  }

  private reading(bucket: TokenBucket, capacity: number, now: number): Reading {
    const level = bucket.levelAt(capacity, now);
    return {
      limit: capacity,
      remaining: Math.max(0, Math.floor(level)),
      resetS: level >= capacity ? 0 : seconds(bucket.msUntil(capacity, capacity)),
    };
  }
}

// The reading with the least left, as a share of its limit: the one a client should pace itself by.
function tightest(readings: readonly Reading[]): Reading | undefined {
  let best: Reading | undefined;
  for (const r of readings) if (!best || r.remaining / r.limit < best.remaining / best.limit) best = r;
  return best;
}

function headersOf(reading: Reading | undefined): RateLimitHeaders {
  if (!reading) return {};
  return {
    'ratelimit-limit': String(reading.limit),
    'ratelimit-remaining': String(reading.remaining),
    'ratelimit-reset': String(reading.resetS),
  };
}
