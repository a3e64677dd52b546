import type { DriftReport } from './drift-report.js';
import type { PluginState } from './plugin-state.js';

/** Every event the kernel emits, by type; exporters subscribe to these and never to the engine directly. */
export interface NucleusEvents {
  'plugin.state': { id: string; version: string; state: PluginState; previous: PluginState; error?: string };
  'plugin.reloaded': { id: string; fromVersion: string; toVersion: string; durationMs: number };
  'plugin.reloadFailed': { id: string; version: string; error: string };
  'extension.changed': { point: string; change: 'added' | 'removed'; pluginId: string; name: string };
  'config.changed': { path: string; value: unknown; previous: unknown };
  /**
   * `tenant`: the API key's tenant (see `Tenancy`) when the request carried a valid key. `traceparent`: the caller's
   * W3C trace context, from a protocol whose requests pass no HTTP hooks (gRPC metadata); tracing continues it.
   * `key`: the key's name (or role), never the key, for per-key accounting.
   */
  'request.start': {
    requestId: string;
    method: string;
    path: string;
    tenant?: string;
    key?: string;
    traceparent?: string;
  };
  'request.end': {
    requestId: string;
    tenant?: string;
    method: string;
    path: string;
    route: string;
    status: number;
    durationMs: number;
    errorCode?: string;
  };
  /**
   * A request to an admin route passed its key check and was answered, ok or not: emitted by the server at the route
   * edge for every admin route, whichever plugin serves it. `key`: the key's name (or role), never the key;
   * `action`: the route said as `resource.verb` (`plugins.enable`, `models.swap`, `config.update`); `target`: what it
   * acted on (the route's parameters, the model a load names, the config keys a change set).
   */
  'admin.action': {
    requestId: string;
    key?: string;
    /** Who acted when no key did: `watcher` for a plugin reload the file watcher started. */
    actor?: string;
    /** The client's address, as the server's socket sees it. */
    address: string;
    action: string;
    method: string;
    /** The route's template (`/admin/models/:name/swap`), or the path when no route took the request. */
    route: string;
    target?: string;
    status: number;
    outcome: 'ok' | 'failed';
    /** The NucleusError code when `outcome` is `failed`. */
    errorCode?: string;
    durationMs: number;
  };
  /** A request was refused by the key check (401 or 403), on any route. `key`: the name of a valid key that lacked the role. */
  'auth.refused': {
    requestId: string;
    key?: string;
    address: string;
    method: string;
    path: string;
    status: number;
    errorCode?: string;
  };
  /**
   * Messages for a `/ws` socket were dropped because it read too slowly (`ws.maxBufferedBytes`): reported when it
   * caught up, or when it was closed for it (`closed`). `key`: the socket's key name (or role).
   */
  'ws.dropped': { key: string; messages: number; closed: boolean };
  'model.loading': { model: string; version: string };
  'model.loaded': { model: string; version: string; durationMs: number; backend: string };
  'model.unloaded': { model: string; version: string };
  'model.failed': { model: string; version: string; error: string };
  /** A model was swapped at run time: new requests go to `toVersion`, loaded from `source`; the old version drained and closed. */
  'model.swapped': { model: string; fromVersion: string; toVersion: string; source: string; durationMs: number };
  /** A swap failed to load or warm up the new version; `rolledBack`: the old version still serves. */
  'model.swapFailed': { model: string; source: string; error: string; rolledBack: boolean };
  'backend.fallback': { requested: string; chosen: string; reason: string };

  // Telemetry. Durations are measured by the emitter; a consumer takes the moment of delivery as the end of
  // what an event describes. `requestId` is the server's request id (`x-request-id`) when an HTTP request
  // started the work, so exporters can join engine events to request events. Counts are per event (deltas)
  // unless a field says it is cumulative.

  /** One tensor inference request finished, ok or not. */
  'inference.end': {
    model: string;
    version: string;
    requestId?: string;
    /** Requests in the batch this one ran in (1 when unbatched, 0 when it never ran). */
    batchSize: number;
    /** Time from admission to dispatch to a worker. */
    queueMs: number;
    /** Time the batch spent in the worker (session run plus transfer). */
    computeMs: number;
    ok: boolean;
    /** The NucleusError code when `ok` is false. */
    errorCode?: string;
  };
  /** The batcher dispatched a batch to a worker. */
  'batch.start': { model: string; version: string; size: number; worker?: number };
  /** A batch came back from its worker (ok or not). */
  'batch.executed': {
    model: string;
    version: string;
    /** Requests in the batch. */
    size: number;
    /** Fraction of the batch tensor that is padding, 0 to 1 (0 when inputs were not ragged). */
    paddingRatio: number;
    durationMs: number;
    /** The requests it carried, where known. */
    requestIds?: string[];
    /** The worker that ran it. */
    worker?: number;
  };
  /** A queue's depth changed; `model` is absent for the server-wide admission queue. */
  'queue.depth': { model?: string; priority: TelemetryPriority; depth: number };
  /** A generation (LLM) request was admitted to its engine. */
  'generation.start': {
    model: string;
    version?: string;
    requestId: string;
    promptTokens: number;
    /** Prompt tokens served from the prefix cache. */
    cachedPromptTokens?: number;
    maxTokens?: number;
    priority: TelemetryPriority;
  };
  /** A group of tokens of one generation was sent to its client (engines post tokens in small groups, not one event per token). */
  'generation.tokens': {
    model: string;
    version?: string;
    requestId: string;
    /** Tokens in this group. */
    tokens: number;
    /** Completion tokens so far, this group included (cumulative). */
    totalTokens: number;
    /** Gaps between consecutive tokens of this group, in ms, where the engine measured them. */
    itlMs?: number[];
  };
  /**
   * Tokens of one generation were written to its client's socket (SSE): for each, ms from being sampled in the
   * engine to the write. Reported in groups, not one event per token.
   */
  'generation.delivery': {
    model: string;
    version?: string;
    requestId: string;
    delaysMs: number[];
  };
  /**
   * A request under rate limits was let through or refused (the rate-limit plugin). `key` is the key's name, absent
   * for a request without one; `limit` and `scope` say what refused it.
   */
  'ratelimit.decision': {
    key?: string;
    allowed: boolean;
    limit?: 'requests' | 'tokens' | 'streams';
    scope?: 'key' | 'address';
  };
  /** LLM tokens (prompt plus generated) charged to a request's rate limits when its generation ended. */
  'ratelimit.tokens': { key?: string; tokens: number };
  /** A generation (LLM) request finished, for whatever reason. */
  'generation.end': {
    model: string;
    version?: string;
    requestId: string;
    promptTokens: number;
    completionTokens: number;
    /** Time to first token from admission; absent when no token was produced. */
    ttftMs?: number;
    /** Mean inter-token latency over the completion; absent with fewer than two tokens. */
    meanItlMs?: number;
    /** From admission to the last token or the failure. */
    durationMs: number;
    /** Time waiting before prefill started. */
    queueMs?: number;
    finishReason: GenerationFinishReason;
    priority: TelemetryPriority;
    /** The NucleusError code when `finishReason` is `error`. */
    errorCode?: string;
  };
  /** A group of engine steps ran back to back in a worker (prefill or decode), for tracing and step metrics. */
  'engine.steps': {
    model: string;
    version?: string;
    phase: 'prefill' | 'decode';
    /** Steps in this group. */
    steps: number;
    /** Mean sequences per step (the continuous batch size). */
    sequences: number;
    /** Tokens processed (prefill) or produced (decode) in the group. */
    tokens: number;
    durationMs: number;
    /** The requests whose sequences took part, where known. */
    requestIds?: string[];
  };
  /** A snapshot of an LLM engine's scheduler, sent when it changes or periodically. */
  'engine.stats': {
    model: string;
    version?: string;
    /** Sequences in the running batch. */
    running: number;
    /** Sequences admitted but not yet running. */
    waiting: number;
    /** Sequences swapped or preempted out of the running batch. */
    preempted?: number;
    /** Fraction of KV cache in use, 0 to 1. */
    kvCacheUsage?: number;
    /** Total preemptions since the engine started (cumulative). */
    preemptionsTotal?: number;
    /** How the engine's steps got through allocation failures since it started (cumulative; absent while none did). */
    stepRecovery?: { cacheFlushes: number; splits: number; failedAlone: number };
  };
  /** A snapshot of a cache (prefix cache, tokenizer cache …); hits, misses and evictions are cumulative since it was created. */
  'cache.stats': {
    /** Which cache: `prefix`, `kv`, `tokenizer` … */
    name: string;
    model?: string;
    hits: number;
    misses: number;
    evictions: number;
    bytes: number;
    capacityBytes: number;
    entries?: number;
  };
  /** A worker thread or process of a model became healthy or unhealthy. */
  'worker.health': {
    model: string;
    version?: string;
    /** The worker's index within the model's pool. */
    worker: number;
    healthy: boolean;
    reason?: string;
    /** Restarts of this worker slot so far (cumulative). */
    restarts?: number;
    /** Unhealthy: how long until the restart is tried (exponential backoff over the deaths in a row). */
    backoffMs?: number;
    /** Unhealthy: the worker died too often in a row and is not restarted any more. */
    gaveUp?: boolean;
  };
  /** A model version's circuit breaker changed state: `open` fails requests fast, `half-open` lets one trial through. */
  'breaker.state': { model: string; version: string; state: 'closed' | 'open' | 'half-open'; reason: string };
  /** A request for `model` was served by its configured fallback model, because `model` could not take it (`reason`). */
  'model.fallback': { model: string; fallback: string; reason: string; requestId?: string };
  /** Speculative decoding: drafted and accepted tokens since the previous event of this model. */
  'spec.acceptance': {
    model: string;
    version?: string;
    /** `draft-model`, `prompt-lookup` … */
    method: string;
    proposedTokens: number;
    acceptedTokens: number;
    /** Drafts verified (one per sequence and step that had one); absent means one. */
    drafts?: number;
    /** Times auto-off paused drafting for a request (acceptance below the threshold) since the previous event. */
    pauses?: number;
    /**
     * Speed-up factor of the replica since it started (seed 004 R12.4): decode tokens per ms of speculative steps over
     * those of plain steps at batch sizes where speculation applies; absent until both kinds of step ran.
     */
    speedup?: number;
  };
  /** Free memory fell below `memory.pressureFreeBytes` (batch sizes shrink, caches evict more) or rose above it again. */
  'memory.pressure': { underPressure: boolean; freeBytes: number; thresholdBytes: number };
  /** Memory and load of one compute device, sent by whoever measures it (a backend, a monitor). */
  'device.stats': {
    /** The backend owning the device: `cuda`, `rocm` … */
    backend: string;
    device: number;
    name?: string;
    memoryUsedBytes: number;
    memoryTotalBytes: number;
    utilizationPercent?: number;
  };
  /**
   * What requests of one model and key cost since the previous event of that pair (the cost plugin): measured CPU,
   * device and memory use, and their price. Deltas; `key` is the API key's name, absent for requests without one.
   */
  'cost.accrued': CostAccrual;
  /** The tuner changed a model's serving knob (or `scheduler.maxRunning`, with `model` `*`), and why. */
  'tuner.decision': TunerDecision;
  /** The stats plugin's periodic snapshot (also the `metrics` WebSocket topic). */
  'stats.snapshot': StatsSnapshot;
  /** A model's live inputs compared with its reference profile (drift and data quality), once per evaluation. */
  'drift.report': DriftReport;
  /** An alert rule started firing. */
  'alert.fired': AlertNotice;
  /** A firing alert rule went back to normal. */
  'alert.resolved': AlertNotice;
  /** A line the server logged, reduced to what a log tail shows (never a payload field). */
  'log.line': LogLine;
}

/**
 * A log line as the `log.line` event carries it: its time, level and message, and which part of the server and which
 * request it is about. The line's other fields (payloads among them) are left out.
 */
export interface LogLine {
  /** ISO 8601. */
  time: string;
  level: 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal';
  msg: string;
  component?: string;
  requestId?: string;
  model?: string;
  /** The message of the error the line reports. */
  error?: string;
}

/** The cost of a model's requests under one key over a short interval (see the `cost.accrued` event). */
export interface CostAccrual {
  model: string;
  key?: string;
  /** Requests finished in the interval. */
  requests: number;
  /** CPU seconds attributed to them. */
  cpuSeconds: number;
  /** Accelerator (GPU) seconds attributed to them; 0 on CPU backends. */
  deviceSeconds: number;
  /** Resident memory held while they ran, in GB-seconds. */
  memoryGbSeconds: number;
  /** The price of all three, in `currency`. */
  cost: number;
  currency: string;
}

/** One change the tuner made (see the `tuner.decision` event). */
export interface TunerDecision {
  /** The model tuned; `*` for a server-wide knob (`maxRunning`). */
  model: string;
  knob: 'maxBatchSize' | 'maxQueueDelayMs' | 'maxRunning';
  previous: number;
  value: number;
  /** Why, in words: the measured p99 and throughput against the target. */
  reason: string;
  /** The measurements the decision was made from. */
  p99Ms: number | null;
  throughputPerS: number;
  targetP99Ms: number;
}

/** Priority classes of queued work, as schedulers see them. */
export type TelemetryPriority = 'high' | 'normal' | 'low';

/** Why a generation ended: a stop condition, the token limit, the client going away, or a failure. */
export type GenerationFinishReason = 'stop' | 'length' | 'abort' | 'error';

/** Latency percentiles over a window, in ms; null where the window holds no sample. */
export interface LatencySummary {
  count: number;
  p50: number | null;
  p95: number | null;
  p99: number | null;
  mean: number | null;
  max: number | null;
}

/** The server's state as the stats plugin sees it from events: `GET /server/stats` and the `metrics` WebSocket topic. */
export interface StatsSnapshot {
  /** ISO time of the snapshot. */
  at: string;
  uptimeS: number;
  /** The sliding window that rates, counts marked "in the window" and latencies cover, in seconds. */
  windowS: number;
  throughput: { requestsPerS: number; inferencesPerS: number; generatedTokensPerS: number; promptTokensPerS: number };
  requests: {
    /** HTTP requests started and not yet answered. */
    inFlight: number;
    /** HTTP requests answered since start. */
    total: number;
    /** In the window: answered, answered 5xx, answered 4xx, and the 5xx share. */
    window: { count: number; errors: number; clientErrors: number; errorRate: number };
    latency: LatencySummary;
  };
  /** Depth of each queue by model (`*` for the server-wide queue) and priority, as last reported. */
  queues: Array<{ model: string; priority: TelemetryPriority; depth: number }>;
  batches: {
    /** Batches started and not yet finished (only where the engine reports `batch.start`). */
    active: number;
    /** Batches run since start. */
    total: number;
    window: { count: number; meanSize: number | null; meanPaddingRatio: number | null };
  };
  models: ModelStats[];
  workers: Array<NucleusEvents['worker.health']>;
  caches: Array<NucleusEvents['cache.stats'] & { hitRate: number | null; usage: number | null }>;
  devices: Array<NucleusEvents['device.stats']>;
  /** The last change of memory pressure, once there was one. */
  memoryPressure?: NucleusEvents['memory.pressure'];
  /** Each watched model's latest drift report (where a drift monitor runs). */
  drift?: DriftReport[];
  process: { rssBytes: number; heapUsedBytes: number; cpuPercent: number; eventLoopLagMs: number };
  /** Cost per model and key since start, once the cost plugin reported any. */
  cost?: CostSummary;
  /** The tuner's knobs as last set, once it changed any. */
  tuning?: Array<Omit<TunerDecision, 'previous'> & { at: string }>;
}

/** Cumulative cost since the server started, by model and by key. */
export interface CostSummary {
  currency: string;
  total: number;
  byModel: Array<{ model: string; requests: number; cost: number; cpuSeconds: number; deviceSeconds: number }>;
  byKey: Array<{ key: string; requests: number; cost: number }>;
}

/** One model version's share of a {@link StatsSnapshot}. */
export interface ModelStats {
  model: string;
  version?: string;
  /** Inference and generation requests finished in the window, and how many of them failed. */
  requests: number;
  errors: number;
  /** Sequences running and waiting, as the engine last reported. */
  running: number;
  waiting: number;
  kvCacheUsage?: number;
  activeBatches: number;
  /** End-to-end latency (queue plus compute, or the whole generation). */
  latency: LatencySummary;
  /** Time to first token; empty for tensor models. */
  ttft: LatencySummary;
  /** For streamed generations: from a token being sampled to its write to the client's socket; empty otherwise. */
  tokenDelivery: LatencySummary;
  /** Speculative decoding since the server started, per method; absent for models that do not speculate. */
  speculation?: Array<{
    method: string;
    drafts: number;
    draftTokens: number;
    acceptedTokens: number;
    acceptanceRate: number | null;
  }>;
}

/** An alert as it is announced on the bus. */
export interface AlertNotice {
  /** The rule's name. */
  name: string;
  severity: 'info' | 'warning' | 'critical';
  /** What the rule measured and the threshold it crossed, in words. */
  summary: string;
  /** The measured value. */
  value: number;
  threshold: number;
  labels: Record<string, string>;
  /** ISO time the alert started firing. */
  startsAt: string;
  /** ISO time it resolved; only on `alert.resolved`. */
  endsAt?: string;
}

/** The name of a kernel event. */
export type EventType = keyof NucleusEvents;

/** A listener for one event type. */
export type EventListener<K extends EventType> = (payload: NucleusEvents[K]) => void;

/** The kernel's typed event bus; a listener that throws is logged and never breaks the emitter. */
export interface EventBus {
  /** Subscribes; returns the function that unsubscribes. */
  on<K extends EventType>(type: K, listener: EventListener<K>): () => void;
  /** Subscribes to every event; returns the function that unsubscribes. */
  onAny(listener: <K extends EventType>(type: K, payload: NucleusEvents[K]) => void): () => void;
  /** Delivers an event to its listeners, synchronously. */
  emit<K extends EventType>(type: K, payload: NucleusEvents[K]): void;
}
