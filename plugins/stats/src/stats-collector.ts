import type {
  DriftReport,
  EventBus,
  LatencySummary,
  ModelStats,
  NucleusEvents,
  StatsSnapshot,
  TelemetryPriority,
} from '@nucleus/sdk';
import { SlidingWindow, summarize, WindowedCounter } from '@nucleus/sdk';
import type { ProcessSample } from './process-sampler.js';

/** How much a {@link StatsCollector} keeps. */
export interface StatsCollectorOptions {
  /** The window of snapshots, in seconds. */
  windowS: number;
  /** The longest window a latency query may ask for, in seconds. */
  retentionS: number;
  /** Samples kept per latency series. */
  maxSamples: number;
}

/** A latency query: one model (optionally one version), one endpoint (optionally one method), or everything. */
export interface LatencyQuery {
  windowS: number;
  model?: string;
  version?: string;
  endpoint?: string;
  method?: string;
}

/** The answer to a {@link LatencyQuery} naming a model or an endpoint. */
export interface SeriesLatency {
  windowS: number;
  model?: string;
  version?: string;
  endpoint?: string;
  method?: string;
  /** End-to-end latency in ms. */
  latency: LatencySummary;
  /** For a model: time to first token and time queued, in ms. */
  ttft?: LatencySummary;
  queue?: LatencySummary;
}

/** The answer to a {@link LatencyQuery} naming nothing: every request, and each endpoint and model. */
export interface LatencyOverview {
  windowS: number;
  overall: LatencySummary;
  endpoints: Array<{ method: string; endpoint: string; latency: LatencySummary }>;
  models: Array<{
    model: string;
    version: string;
    latency: LatencySummary;
    ttft: LatencySummary;
    queue: LatencySummary;
  }>;
}

/** A model version's running state and windows. */
interface ModelRecord {
  model: string;
  version: string;
  running: number;
  waiting: number;
  kvCacheUsage?: number;
  activeBatches: number;
  latency: SlidingWindow;
  ttft: SlidingWindow;
  queue: SlidingWindow;
  tokenDelivery: SlidingWindow;
  requests: WindowedCounter;
  errors: WindowedCounter;
  /** Speculative decoding totals by method. */
  speculation?: Map<string, { drafts: number; draftTokens: number; acceptedTokens: number }>;
}

/** Requests whose token counting is still open are kept at most this many. */
const MAX_OPEN_GENERATIONS = 10_000;

/**
 * The server's state built from kernel events alone: counters, last-known gauges (queues, workers,
 * caches, devices) and sliding windows of latency per model and per endpoint, with p50/p95/p99 over
 * any window up to the retention.
 */
export class StatsCollector {
  private readonly started = Date.now();
  private inFlight = 0;
  private total = 0;
  private batchesTotal = 0;
  private readonly requests: WindowedCounter;
  private readonly serverErrors: WindowedCounter;
  private readonly clientErrors: WindowedCounter;
  private readonly inferences: WindowedCounter;
  private readonly promptTokens: WindowedCounter;
  private readonly generatedTokens: WindowedCounter;
  private readonly batchSizes: SlidingWindow;
  private readonly batchPadding: SlidingWindow;
  private readonly overall: SlidingWindow;
  private readonly endpoints = new Map<string, { method: string; endpoint: string; window: SlidingWindow }>();
  private readonly models = new Map<string, ModelRecord>();
  private readonly queues = new Map<string, { model: string; priority: TelemetryPriority; depth: number }>();
  private readonly workers = new Map<string, NucleusEvents['worker.health']>();
  private readonly caches = new Map<string, NucleusEvents['cache.stats']>();
  private readonly devices = new Map<string, NucleusEvents['device.stats']>();
  private memoryPressure: NucleusEvents['memory.pressure'] | undefined;
  private readonly drift = new Map<string, DriftReport>();
  private readonly countedTokens = new Map<string, number>();

  constructor(private readonly options: StatsCollectorOptions) {
    const retentionS = Math.max(options.retentionS, options.windowS);
    const counter = () => new WindowedCounter(retentionS);
    this.requests = counter();
    this.serverErrors = counter();
    this.clientErrors = counter();
    this.inferences = counter();
    this.promptTokens = counter();
    this.generatedTokens = counter();
    this.batchSizes = this.window();
    this.batchPadding = this.window();
    this.overall = this.window();
  }

  /** The longest window a query may ask for, in seconds. */
  get retentionS(): number {
    return Math.max(this.options.retentionS, this.options.windowS);
  }

  /** Subscribes to the kernel events; returns the function that unsubscribes. */
  attach(events: EventBus): () => void {
    const offs = [
      events.on('request.start', () => void this.inFlight++),
      events.on('request.end', (e) => {
        this.inFlight = Math.max(0, this.inFlight - 1);
        this.total++;
        this.requests.add();
        if (e.status >= 500) this.serverErrors.add();
        else if (e.status >= 400) this.clientErrors.add();
        this.overall.add(e.durationMs);
        this.endpoint(e.method, e.route).add(e.durationMs);
      }),
      events.on('inference.end', (e) => {
        const m = this.model(e.model, e.version);
        this.inferences.add();
        m.requests.add();
        if (!e.ok) m.errors.add();
        if (e.batchSize === 0) return;
        m.latency.add(e.queueMs + e.computeMs);
        m.queue.add(e.queueMs);
      }),
      events.on('generation.start', (e) => this.promptTokens.add(e.promptTokens)),
      events.on('generation.tokens', (e) => {
        this.generatedTokens.add(e.tokens);
        if (!this.countedTokens.has(e.requestId) && this.countedTokens.size >= MAX_OPEN_GENERATIONS) {
          this.countedTokens.delete(this.countedTokens.keys().next().value!);
        }
        this.countedTokens.set(e.requestId, (this.countedTokens.get(e.requestId) ?? 0) + e.tokens);
      }),
      events.on('generation.end', (e) => {
        const m = this.model(e.model, e.version);
        const uncounted = e.completionTokens - (this.countedTokens.get(e.requestId) ?? 0);
        this.countedTokens.delete(e.requestId);
        if (uncounted > 0) this.generatedTokens.add(uncounted);
        this.inferences.add();
        m.requests.add();
        if (e.finishReason === 'error') m.errors.add();
        m.latency.add(e.durationMs);
        if (e.ttftMs !== undefined) m.ttft.add(e.ttftMs);
        if (e.queueMs !== undefined) m.queue.add(e.queueMs);
      }),
      events.on('generation.delivery', (e) => {
        const window = this.model(e.model, e.version).tokenDelivery;
        const at = Date.now();
        for (const ms of e.delaysMs) window.add(ms, at);
      }),
      events.on('engine.stats', (e) => {
        const m = this.model(e.model, e.version);
        m.running = e.running;
        m.waiting = e.waiting;
        if (e.kvCacheUsage !== undefined) m.kvCacheUsage = e.kvCacheUsage;
      }),
      events.on('spec.acceptance', (e) => {
        const m = this.model(e.model, e.version);
        m.speculation ??= new Map();
        const t = m.speculation.get(e.method) ?? { drafts: 0, draftTokens: 0, acceptedTokens: 0 };
        t.drafts += e.drafts ?? 1;
        t.draftTokens += e.proposedTokens;
        t.acceptedTokens += e.acceptedTokens;
        m.speculation.set(e.method, t);
      }),
      events.on('queue.depth', (e) => {
        const model = e.model ?? '*';
        this.queues.set(`${model}\u0000${e.priority}`, { model, priority: e.priority, depth: e.depth });
      }),
      events.on('batch.start', (e) => void this.model(e.model, e.version).activeBatches++),
      events.on('batch.executed', (e) => {
        const m = this.model(e.model, e.version);
        m.activeBatches = Math.max(0, m.activeBatches - 1);
        this.batchesTotal++;
        this.batchSizes.add(e.size);
        this.batchPadding.add(e.paddingRatio);
      }),
      events.on('worker.health', (e) => this.workers.set(`${e.model}\u0000${e.version ?? ''}\u0000${e.worker}`, e)),
      events.on('cache.stats', (e) => this.caches.set(`${e.name}\u0000${e.model ?? ''}`, e)),
      events.on('device.stats', (e) => this.devices.set(`${e.backend}\u0000${e.device}`, e)),
      events.on('memory.pressure', (e) => (this.memoryPressure = e)),
      events.on('drift.report', (e) => void this.drift.set(e.model, e)),
      // A swapped model starts its statistics afresh: records of earlier versions go, and so does the record of
      // events that name no version (an LLM's generations), which belonged to the old one.
      events.on('model.swapped', (e) => {
        for (const [key, m] of this.models)
          if (m.model === e.model && m.version !== e.toVersion) this.models.delete(key);
      }),
      events.on('model.unloaded', (e) => {
        this.models.delete(`${e.model}\u0000${e.version}`);
        for (const [key, w] of this.workers)
          if (w.model === e.model && (w.version ?? e.version) === e.version) this.workers.delete(key);
      }),
    ];
    return () => offs.forEach((off) => off());
  }

  /** The whole picture over the configured window. */
  snapshot(process: ProcessSample, now = Date.now()): StatsSnapshot {
    const windowS = this.options.windowS;
    const windowMs = windowS * 1000;
    const count = this.requests.sum(windowS, now);
    const errors = this.serverErrors.sum(windowS, now);
    const sizes = this.batchSizes.values(windowMs, now);
    const padding = this.batchPadding.values(windowMs, now);
    return {
      at: new Date(now).toISOString(),
      uptimeS: Math.round((now - this.started) / 1000),
      windowS,
      throughput: {
        requestsPerS: round(this.requests.rate(windowS, now)),
        inferencesPerS: round(this.inferences.rate(windowS, now)),
        generatedTokensPerS: round(this.generatedTokens.rate(windowS, now)),
        promptTokensPerS: round(this.promptTokens.rate(windowS, now)),
      },
      requests: {
        inFlight: this.inFlight,
        total: this.total,
        window: {
          count,
          errors,
          clientErrors: this.clientErrors.sum(windowS, now),
          errorRate: count ? round(errors / count) : 0,
        },
        latency: this.overall.summary(windowMs, now),
      },
      queues: [...this.queues.values()].sort(
        (a, b) => a.model.localeCompare(b.model) || a.priority.localeCompare(b.priority),
      ),
      batches: {
        active: [...this.models.values()].reduce((n, m) => n + m.activeBatches, 0),
        total: this.batchesTotal,
        window: { count: sizes.length, meanSize: mean(sizes), meanPaddingRatio: mean(padding) },
      },
      models: [...this.models.values()]
        .sort((a, b) => a.model.localeCompare(b.model) || a.version.localeCompare(b.version))
        .map(
          (m): ModelStats => ({
            model: m.model,
            ...(m.version ? { version: m.version } : {}),
            requests: m.requests.sum(windowS, now),
            errors: m.errors.sum(windowS, now),
            running: m.running,
            waiting: m.waiting,
            ...(m.kvCacheUsage === undefined ? {} : { kvCacheUsage: m.kvCacheUsage }),
            activeBatches: m.activeBatches,
            latency: m.latency.summary(windowMs, now),
            ttft: m.ttft.summary(windowMs, now),
            tokenDelivery: m.tokenDelivery.summary(windowMs, now),
            ...(m.speculation && {
              speculation: [...m.speculation].map(([method, t]) => ({
                method,
                ...t,
                acceptanceRate: t.draftTokens > 0 ? round(t.acceptedTokens / t.draftTokens) : null,
              })),
            }),
          }),
        ),
      workers: [...this.workers.values()],
      caches: [...this.caches.values()].map((c) => ({
        ...c,
        hitRate: c.hits + c.misses > 0 ? round(c.hits / (c.hits + c.misses)) : null,
        usage: c.capacityBytes > 0 ? round(c.bytes / c.capacityBytes) : null,
      })),
      devices: [...this.devices.values()],
      ...(this.memoryPressure && { memoryPressure: this.memoryPressure }),
      ...(this.drift.size > 0 && { drift: [...this.drift.values()] }),
      process,
    };
  }

  /**
   * Latency over `windowS` for one model, one endpoint, or everything. Returns undefined when the named
   * model or endpoint has never been seen.
   */
  latency(query: LatencyQuery, now = Date.now()): SeriesLatency | LatencyOverview | undefined {
    const windowMs = query.windowS * 1000;
    if (query.model !== undefined) {
      const records = [...this.models.values()].filter(
        (m) => m.model === query.model && (query.version === undefined || m.version === query.version),
      );
      if (!records.length) return undefined;
      const merged = (pick: (m: ModelRecord) => SlidingWindow) =>
        summarize(records.flatMap((m) => pick(m).values(windowMs, now)));
      return {
        windowS: query.windowS,
        model: query.model,
        ...(query.version === undefined ? {} : { version: query.version }),
        latency: merged((m) => m.latency),
        ttft: merged((m) => m.ttft),
        queue: merged((m) => m.queue),
      };
    }
    if (query.endpoint !== undefined) {
      const method = query.method?.toUpperCase();
      const series = [...this.endpoints.values()].filter(
        (s) => s.endpoint === query.endpoint && (method === undefined || s.method === method),
      );
      if (!series.length) return undefined;
      return {
        windowS: query.windowS,
        endpoint: query.endpoint,
        ...(method === undefined ? {} : { method }),
        latency: summarize(series.flatMap((s) => s.window.values(windowMs, now))),
      };
    }
    return {
      windowS: query.windowS,
      overall: this.overall.summary(windowMs, now),
      endpoints: [...this.endpoints.values()]
        .sort((a, b) => a.endpoint.localeCompare(b.endpoint) || a.method.localeCompare(b.method))
        .map((s) => ({ method: s.method, endpoint: s.endpoint, latency: s.window.summary(windowMs, now) })),
      models: [...this.models.values()]
        .sort((a, b) => a.model.localeCompare(b.model) || a.version.localeCompare(b.version))
        .map((m) => ({
          model: m.model,
          version: m.version,
          latency: m.latency.summary(windowMs, now),
          ttft: m.ttft.summary(windowMs, now),
          queue: m.queue.summary(windowMs, now),
        })),
    };
  }

  /** The models and endpoints seen so far, for error messages. */
  known(): { models: string[]; endpoints: string[] } {
    return {
      models: [...new Set([...this.models.values()].map((m) => m.model))].sort(),
      endpoints: [...new Set([...this.endpoints.values()].map((s) => s.endpoint))].sort(),
    };
  }

  private window(): SlidingWindow {
    return new SlidingWindow(this.retentionS * 1000, this.options.maxSamples);
  }

  private endpoint(method: string, endpoint: string): SlidingWindow {
    const key = `${method} ${endpoint}`;
    let s = this.endpoints.get(key);
    if (!s) this.endpoints.set(key, (s = { method, endpoint, window: this.window() }));
    return s.window;
  }

  private model(model: string, version: string | undefined): ModelRecord {
    const key = `${model}\u0000${version ?? ''}`;
    let m = this.models.get(key);
    if (!m) {
      const counter = () => new WindowedCounter(this.retentionS);
      m = {
        model,
        version: version ?? '',
        running: 0,
        waiting: 0,
        activeBatches: 0,
        latency: this.window(),
        ttft: this.window(),
        queue: this.window(),
        tokenDelivery: this.window(),
        requests: counter(),
        errors: counter(),
      };
      this.models.set(key, m);
    }
    return m;
  }
}

function mean(values: readonly number[]): number | null {
  return values.length ? round(values.reduce((a, b) => a + b, 0) / values.length) : null;
}

function round(n: number): number {
  return Math.round(n * 1000) / 1000;
}
