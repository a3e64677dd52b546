import type { DriftReport, EventBus, NucleusEvents } from '@nucleus/sdk';
import { quantile, SlidingWindow, WindowedCounter } from '@nucleus/sdk';

/** What an alert rule may measure. */
export type AlertMetric =
  | 'latency_p50'
  | 'latency_p95'
  | 'latency_p99'
  | 'ttft_p95'
  | 'error_rate'
  | 'request_rate'
  | 'inference_rate'
  | 'token_rate'
  | 'rss_bytes'
  | 'heap_used_bytes'
  | 'queue_depth'
  | 'drift_psi'
  | 'drift_ks'
  | 'prediction_drift_psi';

/** A measurement: the value and how many requests it rests on (Infinity for gauges read now). */
export interface Measurement {
  value: number;
  samples: number;
}

/** Which traffic a measurement covers. */
export interface SignalScope {
  metric: AlertMetric;
  windowS: number;
  model?: string;
  endpoint?: string;
}

interface Traffic {
  latency: SlidingWindow;
  requests: WindowedCounter;
  errors: WindowedCounter;
}

interface ModelTraffic extends Traffic {
  ttft: SlidingWindow;
  tokens: WindowedCounter;
}

/** The requests whose token counting is still open are kept at most this many. */
const MAX_OPEN_GENERATIONS = 10_000;

/** Sliding windows of the signals alert rules watch, fed by kernel events, overall, per endpoint and per model. */
export class SignalWindows {
  private readonly http: Traffic;
  private readonly endpoints = new Map<string, Traffic>();
  private readonly models = new Map<string, ModelTraffic>();
  private readonly inferences: WindowedCounter;
  private readonly tokens: WindowedCounter;
  private readonly queues = new Map<string, number>();
  private readonly counted = new Map<string, number>();
  /** The latest drift report of each model and when it came. */
  private readonly drift = new Map<string, { at: number; report: DriftReport }>();

  constructor(
    private readonly retentionS: number,
    private readonly maxSamples = 10_000,
  ) {
    this.http = this.traffic();
    this.inferences = new WindowedCounter(retentionS);
    this.tokens = new WindowedCounter(retentionS);
  }

  /** Subscribes to the kernel events; returns the function that unsubscribes. */
  attach(events: EventBus): () => void {
    const offs = [
      events.on('request.end', (e) => {
        const at = Date.now();
        this.count(this.http, e, at);
        this.count(this.endpoint(e.route), e, at);
      }),
      events.on('inference.end', (e) => {
        const m = this.model(e.model);
        this.inferences.add();
        m.requests.add();
        if (!e.ok) m.errors.add();
        if (e.batchSize > 0) m.latency.add(e.queueMs + e.computeMs);
      }),
      events.on('generation.tokens', (e) => {
        this.tokens.add(e.tokens);
        this.model(e.model).tokens.add(e.tokens);
        if (!this.counted.has(e.requestId) && this.counted.size >= MAX_OPEN_GENERATIONS)
          this.counted.delete(this.counted.keys().next().value!);
        this.counted.set(e.requestId, (this.counted.get(e.requestId) ?? 0) + e.tokens);
      }),
      events.on('generation.end', (e) => {
        const m = this.model(e.model);
        const uncounted = e.completionTokens - (this.counted.get(e.requestId) ?? 0);
        this.counted.delete(e.requestId);
        if (uncounted > 0) {
          this.tokens.add(uncounted);
          m.tokens.add(uncounted);
        }
        this.inferences.add();
        m.requests.add();
        if (e.finishReason === 'error') m.errors.add();
        m.latency.add(e.durationMs);
        if (e.ttftMs !== undefined) m.ttft.add(e.ttftMs);
      }),
      events.on('queue.depth', (e) => this.queues.set(`${e.model ?? '*'}\u0000${e.priority}`, e.depth)),
      events.on('drift.report', (report) => this.drift.set(report.model, { at: Date.now(), report })),
    ];
    return () => offs.forEach((off) => off());
  }

  /** The value a rule compares, or undefined when the scope has never been seen. */
  measure(scope: SignalScope, now = Date.now()): Measurement | undefined {
    const windowS = Math.min(scope.windowS, this.retentionS);
    const windowMs = windowS * 1000;
    const traffic =
      scope.model !== undefined
        ? this.models.get(scope.model)
        : scope.endpoint !== undefined
          ? this.endpoints.get(scope.endpoint)
          : this.http;
    switch (scope.metric) {
      case 'latency_p50':
      case 'latency_p95':
      case 'latency_p99': {
        if (!traffic) return undefined;
        const values = traffic.latency.values(windowMs, now).sort((a, b) => a - b);
        const q = scope.metric === 'latency_p50' ? 0.5 : scope.metric === 'latency_p95' ? 0.95 : 0.99;
        return { value: quantile(values, q) ?? 0, samples: values.length };
      }
      case 'ttft_p95': {
        const windows =
          scope.model !== undefined
            ? [this.models.get(scope.model)?.ttft]
            : [...this.models.values()].map((m) => m.ttft);
        const values = windows.flatMap((w) => w?.values(windowMs, now) ?? []).sort((a, b) => a - b);
        return { value: quantile(values, 0.95) ?? 0, samples: values.length };
      }
      case 'error_rate': {
        if (!traffic) return undefined;
        const requests = traffic.requests.sum(windowS, now);
        return { value: requests ? traffic.errors.sum(windowS, now) / requests : 0, samples: requests };
      }
      case 'request_rate': {
        if (!traffic) return undefined;
        const requests = traffic.requests.sum(windowS, now);
        return { value: requests / windowS, samples: requests };
      }
      case 'inference_rate': {
        const counter = scope.model !== undefined ? this.models.get(scope.model)?.requests : this.inferences;
        const n = counter?.sum(windowS, now) ?? 0;
        return { value: n / windowS, samples: n };
      }
      case 'token_rate': {
        const counter = scope.model !== undefined ? this.models.get(scope.model)?.tokens : this.tokens;
        const n = counter?.sum(windowS, now) ?? 0;
        return { value: n / windowS, samples: n };
      }
      case 'rss_bytes':
        return { value: process.memoryUsage().rss, samples: Infinity };
      case 'heap_used_bytes':
        return { value: process.memoryUsage().heapUsed, samples: Infinity };
      case 'queue_depth': {
        let depth = 0;
        for (const [key, d] of this.queues)
          if (scope.model === undefined || key.startsWith(`${scope.model}\u0000`)) depth += d;
        return { value: depth, samples: Infinity };
      }
      case 'drift_psi':
      case 'drift_ks':
      case 'prediction_drift_psi': {
        // The latest report of each model in the window; across models, the worst. Samples: the rows it rests on.
        if (scope.model !== undefined && !this.drift.has(scope.model)) return undefined;
        let value = 0;
        let samples = 0;
        for (const [model, { at, report }] of this.drift) {
          if ((scope.model !== undefined && model !== scope.model) || at < now - windowMs || at > now) continue;
          const v =
            scope.metric === 'drift_psi'
              ? report.maxPsi
              : scope.metric === 'drift_ks'
                ? report.maxKs
                : report.predictionPsi;
          if (v === undefined) continue;
          value = Math.max(value, v);
          samples = Math.max(samples, report.samples);
        }
        return { value, samples };
      }
    }
  }

  private traffic(): Traffic {
    return {
      latency: new SlidingWindow(this.retentionS * 1000, this.maxSamples),
      requests: new WindowedCounter(this.retentionS),
      errors: new WindowedCounter(this.retentionS),
    };
  }

  private count(t: Traffic, e: NucleusEvents['request.end'], at: number): void {
    t.latency.add(e.durationMs, at);
    t.requests.add(1, at);
    if (e.status >= 500) t.errors.add(1, at);
  }

  private endpoint(route: string): Traffic {
    let t = this.endpoints.get(route);
    if (!t) this.endpoints.set(route, (t = this.traffic()));
    return t;
  }

  private model(name: string): ModelTraffic {
    let m = this.models.get(name);
    if (!m) {
      m = {
        ...this.traffic(),
        ttft: new SlidingWindow(this.retentionS * 1000, this.maxSamples),
        tokens: new WindowedCounter(this.retentionS),
      };
      this.models.set(name, m);
    }
    return m;
  }
}
