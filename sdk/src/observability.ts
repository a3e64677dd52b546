import type { EventType, LatencySummary } from './events.js';
import type { Logger } from './logger.js';
import type { PluginState } from './plugin-state.js';

/** A WebSocket topic a plugin adds to `/ws`: subscribers receive these kernel events as they are emitted. */
export interface WsTopic {
  /** The name clients subscribe with; a built-in topic of the same name wins. */
  readonly name: string;
  /** The events the topic carries. */
  readonly events: readonly EventType[];
  /** One line for listings. */
  readonly description?: string;
  /** `admin`: only admin keys may subscribe (server-wide data, such as log lines); others are not offered it. */
  readonly access?: 'admin';
  /**
   * Called with true when the first socket subscribes to the topic and with false when the last one leaves, so that a
   * plugin can skip the work behind the topic's events while nobody watches them.
   */
  readonly watched?: (watched: boolean) => void;
}

/** A plugin as the read-only plugin directory shows it. */
export interface PluginSummary {
  readonly id: string;
  readonly version: string;
  readonly state: PluginState;
  /** Why the plugin failed, when it did. */
  readonly error?: string;
  readonly provides: readonly string[];
}

/** A plugin's config section as an admin may edit it. */
export interface PluginConfigView {
  /** The JSON schema of its section (from its manifest). */
  readonly schema: Readonly<Record<string, unknown>>;
  /** The section in force, defaults filled and `x-secret` values redacted. */
  readonly values: Readonly<Record<string, unknown>>;
  /** Dotted keys inside the section that `PATCH /admin/config` changes without a restart (`default.requestsPerMinute`). */
  readonly runtimeKeys: readonly string[];
}

/** Read-only view of every known plugin and its state (registered under `Services.plugins`). */
export interface PluginDirectory {
  /** Every known plugin, in id order. */
  list(): readonly PluginSummary[];
  /** A plugin's config section with its schema; undefined for a plugin with no config schema. */
  config?(id: string): PluginConfigView | undefined;
}

/** One reason the server is not fully ready: `degraded` serves (a CPU fallback), `unready` cannot (/ready 503). */
export interface ReadinessCondition {
  /** Who set it: `backend`, `model:resnet`, … */
  key: string;
  severity: 'degraded' | 'unready';
  reason: string;
}

/** What `/ready` answers: whether the server can serve every configured model, and why not or why only degraded. */
export interface ReadinessReport {
  ready: boolean;
  status: 'ready' | 'degraded' | 'unavailable' | 'starting' | 'stopping';
  conditions: ReadinessCondition[];
}

/** Read-only view of the server's readiness (registered under `Services.readiness`), for status pages. */
export interface Readiness {
  report(): ReadinessReport;
}

/** What the server puts on `ctx.state` of every request before plugin hooks and routes run. */
export interface RequestState {
  /** The request id, echoed as `x-request-id`. */
  requestId: string;
  /** A logger whose lines carry `requestId` (and `traceId`/`spanId` once known); payload fields are redacted unless `logging.logPayloads` is on. */
  log: Logger;
  /** The W3C trace id of this request: from its `traceparent` header, or set by a tracing hook. */
  traceId?: string;
  /** The span id of the server span, when a tracing hook made one. */
  spanId?: string;
}

/** The value at quantile `q` (0..1) of ascending `sorted` values, by nearest rank; null when empty. */
export function quantile(sorted: readonly number[], q: number): number | null {
  if (sorted.length === 0) return null;
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil(q * sorted.length)));
  return sorted[rank - 1]!;
}

/** Count, p50/p95/p99, mean and max of a list of values (in any order). */
export function summarize(values: readonly number[]): LatencySummary {
  if (values.length === 0) return { count: 0, p50: null, p95: null, p99: null, mean: null, max: null };
  const sorted = Float64Array.from(values).sort();
  const list = Array.from(sorted);
  let sum = 0;
  for (const v of list) sum += v;
  return {
    count: list.length,
    p50: quantile(list, 0.5),
    p95: quantile(list, 0.95),
    p99: quantile(list, 0.99),
    mean: sum / list.length,
    max: list[list.length - 1]!,
  };
}

/**
 * Timestamped samples kept for `retentionMs`, at most `capacity` of them (the oldest go first), for
 * percentiles over any window up to the retention. Under a load above `capacity` samples per window,
 * percentiles are those of the most recent `capacity` samples.
 */
export class SlidingWindow {
  private readonly times: Float64Array;
  private readonly samples: Float64Array;
  /** Index of the next write. */
  private head = 0;
  private size = 0;

  constructor(
    readonly retentionMs: number,
    readonly capacity = 10_000,
  ) {
    this.times = new Float64Array(capacity);
    this.samples = new Float64Array(capacity);
  }

  /** Records a sample taken at `at` (ms since the epoch). */
  add(value: number, at = Date.now()): void {
    this.times[this.head] = at;
    this.samples[this.head] = value;
    this.head = (this.head + 1) % this.capacity;
    if (this.size < this.capacity) this.size++;
  }

  /** The samples of the last `windowMs` (capped at the retention), newest first. */
  values(windowMs: number, now = Date.now()): number[] {
    const since = now - Math.min(windowMs, this.retentionMs);
    const out: number[] = [];
    for (let i = 0; i < this.size; i++) {
      const at = (this.head - 1 - i + this.capacity) % this.capacity;
      if (this.times[at]! < since) break;
      if (this.times[at]! <= now) out.push(this.samples[at]!);
    }
    return out;
  }

  /** {@link summarize} of the last `windowMs`. */
  summary(windowMs: number, now = Date.now()): LatencySummary {
    return summarize(this.values(windowMs, now));
  }
}

/** Sums of amounts (requests, tokens, errors) per second over the last `retentionS` seconds, for rates over a window. */
export class WindowedCounter {
  private readonly buckets: Float64Array;
  private readonly seconds: Float64Array;

  constructor(readonly retentionS: number) {
    this.buckets = new Float64Array(retentionS + 1);
    this.seconds = new Float64Array(retentionS + 1).fill(-1);
  }

  /** Adds `amount` at time `at` (ms since the epoch). */
  add(amount = 1, at = Date.now()): void {
    const second = Math.floor(at / 1000);
    const i = second % this.buckets.length;
    if (this.seconds[i] !== second) {
      this.seconds[i] = second;
      this.buckets[i] = 0;
    }
    this.buckets[i]! += amount;
  }

  /** The total over the last `windowS` seconds (the current second included), capped at the retention. */
  sum(windowS: number, now = Date.now()): number {
    const current = Math.floor(now / 1000);
    const oldest = current - Math.min(windowS, this.retentionS) + 1;
    let total = 0;
    for (let i = 0; i < this.buckets.length; i++) {
      const second = this.seconds[i]!;
      if (second >= oldest && second <= current) total += this.buckets[i]!;
    }
    return total;
  }

  /** The mean amount per second over the last `windowS` seconds. */
  rate(windowS: number, now = Date.now()): number {
    const span = Math.min(windowS, this.retentionS);
    return span > 0 ? this.sum(span, now) / span : 0;
  }
}
