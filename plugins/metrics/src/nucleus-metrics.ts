import type { EventBus, NucleusEvents, PluginSummary } from '@nucleus/sdk';
import { PLUGIN_STATES, WindowedCounter } from '@nucleus/sdk';
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { BucketHistogram } from './bucket-histogram.js';
import { CacheReports, type CacheLabel, CACHE } from './cache-reports.js';
import { CumulativeCounter } from './cumulative-counter.js';

/** Seconds buckets from sub-millisecond tensor runs to minutes-long generations. */
const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 40, 80, 160];
/** vLLM's time-to-first-token buckets, with finer steps below 10 ms for small models. */
const TTFT_BUCKETS = [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20, 40, 80];
/** vLLM's inter-token latency buckets, with finer steps below 10 ms for small models. */
const ITL_BUCKETS = [
  0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1, 2.5, 5, 7.5, 10,
];
/**
 * From a token being sampled to its write to the client's socket: sub-millisecond steps up to the 10 ms target, then
 * coarser.
 */
const DELIVERY_BUCKETS = [
  0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 0.5, 1,
];
const TOKEN_BUCKETS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000];
const BATCH_BUCKETS = [1, 2, 4, 8, 16, 32, 64, 128, 256];
const RATIO_BUCKETS = [0, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1];
const LOAD_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];

/**
 * Requests whose token counting is still open are kept at most this many, so a lost `generation.end` cannot grow
 * memory.
 */
const MAX_OPEN_GENERATIONS = 10_000;
/** A generation reporting only a mean inter-token latency is observed at most this many times. */
const MAX_ITL_SAMPLES = 4096;

const MODEL = ['model_name', 'model_version'] as const;
type ModelLabel = (typeof MODEL)[number];

/** How {@link NucleusMetrics} names and computes its metrics. */
export interface NucleusMetricsOptions {
  /** Name prefix: `nucleus` gives `nucleus_time_to_first_token_seconds`; `vllm` gives vLLM's own `vllm:…` names. */
  namespace: string;
  /** The window the `avg_*_throughput_toks_per_s` gauges average over. */
  throughputWindowS: number;
  /** Called before the GPU gauges are read, so a probe can refresh them. */
  refreshDevices?: () => Promise<void>;
}

/** vLLM names that promtool's lint rejects, and what they are called outside the `vllm` namespace. */
export const LINT_CLEAN_NAMES: Readonly<Record<string, string>> = {
  avg_prompt_throughput_toks_per_s: 'avg_prompt_throughput_tokens_per_second',
  avg_generation_throughput_toks_per_s: 'avg_generation_throughput_tokens_per_second',
  iteration_tokens_total: 'iteration_tokens',
};

/**
 * Every Nucleus metric, vLLM-style (`<namespace>_<name>`, or vLLM's own `vllm:<name>`), in one registry and fed only by kernel
 * events: {@link NucleusMetrics.attach} subscribes, and the returned function unsubscribes.
 */
export class NucleusMetrics {
  private readonly ns: string;
  private readonly m;
  private readonly cumulative;
  private readonly promptTokens = new Map<string, WindowedCounter>();
  private readonly generatedTokens = new Map<string, WindowedCounter>();
  /**
   * Completion tokens already counted from `generation.tokens`, by request id; and whether inter-token gaps came with
   * them.
   */
  private readonly open = new Map<string, { counted: number; itl: boolean }>();
  private readonly pluginVersions = new Map<string, string>();
  private readonly inFlight = new Map<string, number>();
  /** Drafted and accepted tokens per model and method, for the acceptance rate. */
  private readonly specTotals = new Map<string, { drafted: number; accepted: number }>();
  /** What the caches reported since the metrics were last read. */
  private readonly caches = new CacheReports();

  constructor(
    registry: Registry,
    private readonly options: NucleusMetricsOptions,
  ) {
    this.ns = options.namespace;
    const registers = [registry];
    // `vllm` serves vLLM's exact names (colon after the namespace, as its dashboards expect); any other
    // namespace gets promtool-clean names: an underscore, and spelled-out units.
    const name = (n: string) => (this.ns === 'vllm' ? `vllm:${n}` : `${this.ns}_${LINT_CLEAN_NAMES[n] ?? n}`);
    const counter = <L extends string>(n: string, help: string, labelNames: readonly L[]) =>
      new Counter<L>({ name: name(n), help, labelNames, registers });
    const gauge = <L extends string>(n: string, help: string, labelNames: readonly L[], collect?: () => void) =>
      new Gauge<L>({ name: name(n), help, labelNames, registers, ...(collect && { collect }) });
    // The cache metrics are brought up to date when read: a cache reports its counters with every request.
    const cacheCounter = (n: string, help: string) =>
      new Counter<CacheLabel>({ name: name(n), help, labelNames: CACHE, registers, collect: () => this.flushCaches() });
    const cacheGauge = (n: string, help: string) => gauge(n, help, CACHE, () => this.flushCaches());
    const histogram = <L extends string>(n: string, help: string, labelNames: readonly L[], buckets: number[]) =>
      new Histogram<L>({ name: name(n), help, labelNames, buckets, registers });
    const refresh = options.refreshDevices;
    const gpuGauge = (n: string, help: string) =>
      new Gauge({
        name: name(n),
        help,
        labelNames: ['backend', 'gpu', 'gpu_name'],
        registers,
        ...(refresh ? { collect: () => refresh() } : {}),
      });
    const throughput = (map: Map<string, WindowedCounter>) =>
      function (this: Gauge<ModelLabel>) {
        for (const [key, window] of map) {
          const [model_name, model_version] = JSON.parse(key) as [string, string];
          this.set({ model_name, model_version }, window.rate(options.throughputWindowS));
        }
      };

    this.m = {
      // HTTP front.
      // One observation per request: counted without prom-client's label validation and hashing each time.
      httpDuration: new BucketHistogram(
        name('http_request_duration_seconds'),
        'HTTP request latency by method, route template and status.',
        ['method', 'route', 'status'],
        LATENCY_BUCKETS,
        registers,
      ),
      httpInFlight: gauge('http_requests_in_flight', 'HTTP requests started and not yet answered.', []),
      httpErrors: counter('http_request_errors_total', 'HTTP error responses by route template and error code.', [
        'route',
        'code',
      ]),
      wsDropped: counter(
        'ws_dropped_messages_total',
        '/ws messages dropped for sockets that read too slowly, by key.',
        ['key'],
      ),
      wsSlowClosed: counter('ws_slow_disconnects_total', '/ws sockets closed for reading too slowly, by key.', ['key']),
      // Requests to models (tensor inference and generation).
      success: counter(
        'request_success_total',
        'Model requests that finished, by finish reason (tensor requests count as "stop").',
        [...MODEL, 'finished_reason'],
      ),
      errors: counter('request_errors_total', 'Model requests that failed, by error code.', [...MODEL, 'code']),
      e2e: histogram(
        'e2e_request_latency_seconds',
        'Model request latency from admission to the last output.',
        MODEL,
        LATENCY_BUCKETS,
      ),
      queueTime: histogram(
        'request_queue_time_seconds',
        'Time a model request waited before it ran.',
        MODEL,
        LATENCY_BUCKETS,
      ),
      inferenceTime: histogram(
        'request_inference_time_seconds',
        'Time a model request spent running (tensor: batch compute; generation: prefill plus decode).',
        MODEL,
        LATENCY_BUCKETS,
      ),
      prefillTime: histogram(
        'request_prefill_time_seconds',
        'Time from the start of running to the first token.',
        MODEL,
        LATENCY_BUCKETS,
      ),
      decodeTime: histogram(
        'request_decode_time_seconds',
        'Time from the first token to the last.',
        MODEL,
        LATENCY_BUCKETS,
      ),
      ttft: histogram('time_to_first_token_seconds', 'Time to first token, from admission.', MODEL, TTFT_BUCKETS),
      itl: histogram('inter_token_latency_seconds', 'Gap between consecutive output tokens.', MODEL, ITL_BUCKETS),
      tokenDelivery: new BucketHistogram(
        name('token_delivery_seconds'),
        "Time from a token being sampled in the engine to its write to the client's stream socket.",
        MODEL,
        DELIVERY_BUCKETS,
        registers,
      ),
      promptTokensTotal: counter('prompt_tokens_total', 'Prompt tokens processed.', MODEL),
      generationTokensTotal: counter('generation_tokens_total', 'Tokens generated.', MODEL),
      requestPromptTokens: histogram(
        'request_prompt_tokens',
        'Prompt tokens per generation request.',
        MODEL,
        TOKEN_BUCKETS,
      ),
      requestGenerationTokens: histogram(
        'request_generation_tokens',
        'Generated tokens per generation request.',
        MODEL,
        TOKEN_BUCKETS,
      ),
      promptThroughput: new Gauge<ModelLabel>({
        name: name('avg_prompt_throughput_toks_per_s'),
        help: `Prompt tokens per second over the last ${options.throughputWindowS} s.`,
        labelNames: MODEL,
        registers,
        collect: throughput(this.promptTokens),
      }),
      generationThroughput: new Gauge<ModelLabel>({
        name: name('avg_generation_throughput_toks_per_s'),
        help: `Generated tokens per second over the last ${options.throughputWindowS} s.`,
        labelNames: MODEL,
        registers,
        collect: throughput(this.generatedTokens),
      }),
      // Scheduling and batching.
      running: gauge('num_requests_running', 'Sequences in the running batch of an LLM engine.', MODEL),
      waiting: gauge('num_requests_waiting', 'Sequences admitted and waiting to run in an LLM engine.', MODEL),
      preempted: gauge('num_requests_preempted', 'Sequences preempted out of the running batch.', MODEL),
      kvUsage: gauge('kv_cache_usage_perc', 'Fraction of the KV cache in use, 0 to 1.', MODEL),
      preemptions: counter('num_preemptions_total', 'Sequences preempted since start.', MODEL),
      stepRecoveries: counter(
        'engine_step_recoveries_total',
        'Recoveries from LLM engine steps that could not allocate memory, by action: the prefix cache emptied ' +
          '(cache_flush), the batch split (split), a sequence failed in a step of its own (failed_alone).',
        [...MODEL, 'action'],
      ),
      queueDepth: gauge(
        'queue_depth',
        'Requests waiting in a queue, by model ("*" for the server-wide queue) and priority.',
        ['model_name', 'priority'],
      ),
      batchSize: histogram('batch_size', 'Requests per executed batch.', MODEL, BATCH_BUCKETS),
      batchPadding: histogram(
        'batch_padding_ratio',
        'Fraction of an executed batch that is padding.',
        MODEL,
        RATIO_BUCKETS,
      ),
      batchDuration: histogram('batch_duration_seconds', 'Time a batch spent in its worker.', MODEL, LATENCY_BUCKETS),
      batchesInFlight: gauge('batches_in_flight', 'Batches dispatched to workers and not yet back.', MODEL),
      iterationTokens: histogram(
        'iteration_tokens_total',
        'Tokens per engine step (mean over each reported group of steps).',
        [...MODEL, 'phase'],
        TOKEN_BUCKETS,
      ),
      stepDuration: histogram(
        'engine_step_duration_seconds',
        'Duration of one engine step (mean over each reported group of steps).',
        [...MODEL, 'phase'],
        LATENCY_BUCKETS,
      ),
      // Caches.
      prefixQueries: counter('prefix_cache_queries_total', 'Prompt tokens looked up in the prefix cache.', MODEL),
      prefixHits: counter('prefix_cache_hits_total', 'Prompt tokens served from the prefix cache.', MODEL),
      cacheHits: cacheCounter('cache_hits_total', 'Cache lookups that hit, by cache.'),
      cacheMisses: cacheCounter('cache_misses_total', 'Cache lookups that missed, by cache.'),
      cacheEvictions: cacheCounter('cache_evictions_total', 'Cache entries evicted, by cache.'),
      cacheHitRate: cacheGauge('cache_hit_rate', 'Hits over lookups since the cache was created, 0 to 1.'),
      cacheBytes: cacheGauge('cache_usage_bytes', 'Bytes held by a cache.'),
      cacheCapacity: cacheGauge('cache_capacity_bytes', 'Bytes a cache may hold.'),
      cacheUsage: cacheGauge('cache_usage_perc', 'Fraction of a cache in use, 0 to 1.'),
      // Speculative decoding.
      specDrafts: counter(
        'spec_decode_num_drafts_total',
        'Speculative drafts verified (one per sequence and step that had one).',
        [...MODEL, 'method'],
      ),
      specDraftTokens: counter('spec_decode_num_draft_tokens_total', 'Draft tokens proposed.', [...MODEL, 'method']),
      specAccepted: counter('spec_decode_num_accepted_tokens_total', 'Draft tokens accepted.', [...MODEL, 'method']),
      specAcceptance: gauge(
        'spec_decode_draft_acceptance_rate',
        'Accepted over drafted tokens since the server started, 0 to 1.',
        [...MODEL, 'method'],
      ),
      specSpeedup: gauge(
        'spec_decode_speedup_factor',
        'Decode tokens per second of speculative steps over plain ones (at batch sizes where speculation ' +
          'applies), as the latest replica to report measured it.',
        [...MODEL, 'method'],
      ),
      specPauses: counter(
        'spec_decode_auto_off_pauses_total',
        'Times auto-off paused drafting for a request whose acceptance rate fell below the threshold.',
        [...MODEL, 'method'],
      ),
      // Models, workers, devices, plugins.
      modelLoadTime: histogram(
        'model_load_time_seconds',
        'Time to load a model version.',
        [...MODEL, 'backend'],
        LOAD_BUCKETS,
      ),
      modelLoaded: gauge(
        'model_loaded',
        '1 while a model version is loaded, 0 after it was unloaded or failed.',
        MODEL,
      ),
      modelEvents: counter('model_events_total', 'Model lifecycle events (loading, loaded, unloaded, failed).', [
        ...MODEL,
        'event',
      ]),
      modelSwaps: counter('model_swaps_total', 'Model swaps at run time, by outcome (swapped, failed).', [
        'model_name',
        'outcome',
      ]),
      backendFallbacks: counter(
        'backend_fallbacks_total',
        'Times a requested backend was unusable and another was used.',
        ['requested', 'chosen'],
      ),
      workerHealthy: gauge('worker_healthy', '1 while a worker is healthy, 0 while it is not.', [...MODEL, 'worker']),
      workerRestarts: counter('worker_restarts_total', 'Worker restarts.', [...MODEL, 'worker']),
      gpuMemoryUsed: gpuGauge('gpu_memory_used_bytes', 'Memory in use on a GPU.'),
      gpuMemoryTotal: gpuGauge('gpu_memory_total_bytes', 'Memory of a GPU.'),
      gpuUtilization: gpuGauge('gpu_utilization_perc', 'GPU busy fraction, 0 to 1.'),
      pluginState: gauge('plugin_state', '1 for the state each plugin is in, 0 for the others.', [
        'plugin',
        'version',
        'state',
      ]),
      pluginReloads: counter('plugin_reloads_total', 'Plugin hot reloads by outcome.', ['plugin', 'outcome']),
      // Rate limits, per API key by its name ("" for requests without a key); never per client address.
      rateLimitRequests: counter(
        'rate_limit_requests_total',
        'Requests under rate limits by API key name and outcome (allowed, or the limit that refused them).',
        ['key', 'outcome'],
      ),
      rateLimitTokens: counter(
        'rate_limit_tokens_total',
        'LLM tokens (prompt plus generated) charged to rate limits, by API key name.',
        ['key'],
      ),
      // Drift and data quality of a model's live inputs, as its latest `drift.report` measured them.
      featurePsi: gauge('feature_drift_psi', 'Population stability index of a feature over the live window.', [
        'model_name',
        'feature',
      ]),
      featureKs: gauge('feature_drift_ks', 'Kolmogorov-Smirnov statistic of a feature over the live window.', [
        'model_name',
        'feature',
      ]),
      predictionPsi: gauge(
        'prediction_drift_psi',
        'Population stability index of the predictions over the live window.',
        ['model_name'],
      ),
      featureQuality: gauge(
        'feature_quality_values',
        'Missing, NaN and out-of-range values of a feature in the live window.',
        ['model_name', 'feature', 'issue'],
      ),
    };
    this.cumulative = {
      preemptions: new CumulativeCounter(this.m.preemptions),
      stepRecoveries: new CumulativeCounter(this.m.stepRecoveries),
      workerRestarts: new CumulativeCounter(this.m.workerRestarts),
    };
  }

  // The cache counters and gauges as the latest reports leave them (called when any of them is read).
  private flushCaches(): void {
    const m = this.m;
    this.caches.drain((labels, added, e) => {
      if (added.hits > 0) m.cacheHits.inc(labels, added.hits);
      if (added.misses > 0) m.cacheMisses.inc(labels, added.misses);
      if (added.evictions > 0) m.cacheEvictions.inc(labels, added.evictions);
      const lookups = e.hits + e.misses;
      if (lookups > 0) m.cacheHitRate.set(labels, e.hits / lookups);
      m.cacheBytes.set(labels, e.bytes);
      m.cacheCapacity.set(labels, e.capacityBytes);
      if (e.capacityBytes > 0) m.cacheUsage.set(labels, e.bytes / e.capacityBytes);
    });
  }

  /** Sets the plugin-state gauges from a listing of every plugin (at activation, before events tell of changes). */
  setPlugins(plugins: readonly PluginSummary[]): void {
    for (const p of plugins) this.setPluginState(p.id, p.version, p.state);
  }

  /** Sets the GPU gauges for one device. */
  setDevice(d: NucleusEvents['device.stats']): void {
    const labels = { backend: d.backend, gpu: String(d.device), gpu_name: d.name ?? '' };
    this.m.gpuMemoryUsed.set(labels, d.memoryUsedBytes);
    this.m.gpuMemoryTotal.set(labels, d.memoryTotalBytes);
    if (d.utilizationPercent !== undefined) this.m.gpuUtilization.set(labels, d.utilizationPercent / 100);
  }

  /** Subscribes to the kernel events; returns the function that unsubscribes. */
  attach(events: EventBus): () => void {
    const m = this.m;
    const offs = [
      events.on('request.start', () => m.httpInFlight.inc()),
      events.on('request.end', (e) => {
        m.httpInFlight.dec();
        m.httpDuration.observe({ method: e.method, route: e.route, status: String(e.status) }, e.durationMs / 1000);
        if (e.errorCode) m.httpErrors.inc({ route: e.route, code: e.errorCode });
      }),
      events.on('inference.end', (e) => {
        const labels = model(e);
        if (e.ok) m.success.inc({ ...labels, finished_reason: 'stop' });
        else m.errors.inc({ ...labels, code: e.errorCode ?? 'unknown' });
        if (e.batchSize === 0) return;
        m.e2e.observe(labels, (e.queueMs + e.computeMs) / 1000);
        m.queueTime.observe(labels, e.queueMs / 1000);
        m.inferenceTime.observe(labels, e.computeMs / 1000);
      }),
      events.on('generation.start', (e) => {
        const labels = model(e);
        m.promptTokensTotal.inc(labels, e.promptTokens);
        this.rate(this.promptTokens, labels).add(e.promptTokens);
        if (e.cachedPromptTokens !== undefined) {
          m.prefixQueries.inc(labels, e.promptTokens);
          m.prefixHits.inc(labels, e.cachedPromptTokens);
        }
      }),
      events.on('generation.tokens', (e) => {
        const labels = model(e);
        const open = this.openGeneration(e.requestId);
        open.counted += e.tokens;
        m.generationTokensTotal.inc(labels, e.tokens);
        this.rate(this.generatedTokens, labels).add(e.tokens);
        if (e.itlMs?.length) {
          open.itl = true;
          for (const gap of e.itlMs) m.itl.observe(labels, gap / 1000);
        }
      }),
      // One value per streamed token: counted in bulk, without prom-client's work per observation.
      events.on('generation.delivery', (e) => m.tokenDelivery.observeAll(model(e), e.delaysMs, 1 / 1000)),
      events.on('generation.end', (e) => this.generationEnd(e)),
      events.on('engine.steps', (e) => {
        if (e.steps <= 0) return;
        const labels = { ...model(e), phase: e.phase };
        m.iterationTokens.observe(labels, e.tokens / e.steps);
        m.stepDuration.observe(labels, e.durationMs / e.steps / 1000);
      }),
      events.on('engine.stats', (e) => {
        const labels = model(e);
        m.running.set(labels, e.running);
        m.waiting.set(labels, e.waiting);
        if (e.preempted !== undefined) m.preempted.set(labels, e.preempted);
        if (e.kvCacheUsage !== undefined) m.kvUsage.set(labels, e.kvCacheUsage);
        if (e.preemptionsTotal !== undefined) this.cumulative.preemptions.observe(labels, e.preemptionsTotal);
        if (e.stepRecovery) {
          this.cumulative.stepRecoveries.observe({ ...labels, action: 'cache_flush' }, e.stepRecovery.cacheFlushes);
          this.cumulative.stepRecoveries.observe({ ...labels, action: 'split' }, e.stepRecovery.splits);
          this.cumulative.stepRecoveries.observe({ ...labels, action: 'failed_alone' }, e.stepRecovery.failedAlone);
        }
      }),
      events.on('queue.depth', (e) => m.queueDepth.set({ model_name: e.model ?? '*', priority: e.priority }, e.depth)),
      events.on('batch.start', (e) => this.batchesInFlight(model(e), +1)),
      events.on('batch.executed', (e) => {
        const labels = model(e);
        m.batchSize.observe(labels, e.size);
        m.batchPadding.observe(labels, e.paddingRatio);
        m.batchDuration.observe(labels, e.durationMs / 1000);
        this.batchesInFlight(labels, -1);
      }),
      events.on('cache.stats', (e) => this.caches.report(e)),
      events.on('spec.acceptance', (e) => {
        const labels = { ...model(e), method: e.method };
        m.specDrafts.inc(labels, e.drafts ?? 1);
        m.specDraftTokens.inc(labels, e.proposedTokens);
        m.specAccepted.inc(labels, e.acceptedTokens);
        const key = JSON.stringify(labels);
        const total = this.specTotals.get(key) ?? { drafted: 0, accepted: 0 };
        total.drafted += e.proposedTokens;
        total.accepted += e.acceptedTokens;
        this.specTotals.set(key, total);
        if (total.drafted > 0) m.specAcceptance.set(labels, total.accepted / total.drafted);
        if (e.speedup !== undefined) m.specSpeedup.set(labels, e.speedup);
        if (e.pauses !== undefined) m.specPauses.inc(labels, e.pauses);
      }),
      events.on('worker.health', (e) => {
        const labels = { ...model(e), worker: String(e.worker) };
        m.workerHealthy.set(labels, e.healthy ? 1 : 0);
        if (e.restarts !== undefined) this.cumulative.workerRestarts.observe(labels, e.restarts);
      }),
      events.on('device.stats', (e) => this.setDevice(e)),
      events.on('model.loading', (e) => m.modelEvents.inc({ ...model(e), event: 'loading' })),
      events.on('model.loaded', (e) => {
        m.modelEvents.inc({ ...model(e), event: 'loaded' });
        m.modelLoadTime.observe({ ...model(e), backend: e.backend }, e.durationMs / 1000);
        m.modelLoaded.set(model(e), 1);
      }),
      events.on('model.unloaded', (e) => {
        m.modelEvents.inc({ ...model(e), event: 'unloaded' });
        m.modelLoaded.set(model(e), 0);
      }),
      events.on('model.failed', (e) => {
        m.modelEvents.inc({ ...model(e), event: 'failed' });
        m.modelLoaded.set(model(e), 0);
      }),
      events.on('model.swapped', (e) => m.modelSwaps.inc({ model_name: e.model, outcome: 'swapped' })),
      events.on('model.swapFailed', (e) => m.modelSwaps.inc({ model_name: e.model, outcome: 'failed' })),
      events.on('backend.fallback', (e) => m.backendFallbacks.inc({ requested: e.requested, chosen: e.chosen })),
      events.on('ws.dropped', (e) => {
        m.wsDropped.inc({ key: e.key }, e.messages);
        if (e.closed) m.wsSlowClosed.inc({ key: e.key });
      }),
      events.on('plugin.state', (e) => this.setPluginState(e.id, e.version, e.state)),
      events.on('plugin.reloaded', (e) => m.pluginReloads.inc({ plugin: e.id, outcome: 'ok' })),
      events.on('plugin.reloadFailed', (e) => m.pluginReloads.inc({ plugin: e.id, outcome: 'failed' })),
      events.on('ratelimit.decision', (e) =>
        m.rateLimitRequests.inc({ key: e.key ?? '', outcome: e.allowed ? 'allowed' : `refused_${e.limit ?? 'other'}` }),
      ),
      events.on('ratelimit.tokens', (e) => m.rateLimitTokens.inc({ key: e.key ?? '' }, e.tokens)),
      events.on('drift.report', (e) => {
        for (const f of e.features) {
          const labels = { model_name: e.model, feature: f.name };
          m.featurePsi.set(labels, f.psi);
          m.featureKs.set(labels, f.ks);
          m.featureQuality.set({ ...labels, issue: 'missing' }, f.missing);
          m.featureQuality.set({ ...labels, issue: 'nan' }, f.nan);
          m.featureQuality.set({ ...labels, issue: 'out_of_range' }, f.outOfRange);
        }
        if (e.predictionPsi !== undefined) m.predictionPsi.set({ model_name: e.model }, e.predictionPsi);
      }),
    ];
    return () => offs.forEach((off) => off());
  }

  private generationEnd(e: NucleusEvents['generation.end']): void {
    const m = this.m;
    const labels = model(e);
    const open = this.open.get(e.requestId);
    this.open.delete(e.requestId);
    const uncounted = e.completionTokens - (open?.counted ?? 0);
    if (uncounted > 0) {
      m.generationTokensTotal.inc(labels, uncounted);
      this.rate(this.generatedTokens, labels).add(uncounted);
    }
    if (e.finishReason === 'error') m.errors.inc({ ...labels, code: e.errorCode ?? 'unknown' });
    else m.success.inc({ ...labels, finished_reason: e.finishReason });
    m.e2e.observe(labels, e.durationMs / 1000);
    m.requestPromptTokens.observe(labels, e.promptTokens);
    m.requestGenerationTokens.observe(labels, e.completionTokens);
    if (e.queueMs !== undefined) {
      m.queueTime.observe(labels, e.queueMs / 1000);
      m.inferenceTime.observe(labels, Math.max(0, e.durationMs - e.queueMs) / 1000);
    }
    if (e.ttftMs !== undefined) {
      m.ttft.observe(labels, e.ttftMs / 1000);
      if (e.queueMs !== undefined) m.prefillTime.observe(labels, Math.max(0, e.ttftMs - e.queueMs) / 1000);
      m.decodeTime.observe(labels, Math.max(0, e.durationMs - e.ttftMs) / 1000);
    }
    // Engines that do not send per-token gaps still give a mean: count it once per gap.
    if (!open?.itl && e.meanItlMs !== undefined && e.completionTokens >= 2) {
      const gaps = Math.min(e.completionTokens - 1, MAX_ITL_SAMPLES);
      for (let i = 0; i < gaps; i++) m.itl.observe(labels, e.meanItlMs / 1000);
    }
  }

  /** Only engines that report `batch.start` have batches in flight; the count never goes below zero. */
  private batchesInFlight(labels: Record<ModelLabel, string>, change: 1 | -1): void {
    const key = JSON.stringify(labels);
    const n = Math.max(0, (this.inFlight.get(key) ?? 0) + change);
    if (change < 0 && !this.inFlight.has(key)) return;
    this.inFlight.set(key, n);
    this.m.batchesInFlight.set(labels, n);
  }

  private openGeneration(requestId: string): { counted: number; itl: boolean } {
    let open = this.open.get(requestId);
    if (!open) {
      if (this.open.size >= MAX_OPEN_GENERATIONS) this.open.delete(this.open.keys().next().value!);
      this.open.set(requestId, (open = { counted: 0, itl: false }));
    }
    return open;
  }

  private rate(map: Map<string, WindowedCounter>, labels: Record<ModelLabel, string>): WindowedCounter {
    const key = JSON.stringify([labels.model_name, labels.model_version]);
    let window = map.get(key);
    if (!window) map.set(key, (window = new WindowedCounter(Math.max(1, this.options.throughputWindowS))));
    return window;
  }

  private setPluginState(id: string, version: string, state: string): void {
    const previous = this.pluginVersions.get(id);
    if (previous !== undefined && previous !== version) {
      for (const s of PLUGIN_STATES) this.m.pluginState.remove({ plugin: id, version: previous, state: s });
    }
    this.pluginVersions.set(id, version);
    for (const s of PLUGIN_STATES) this.m.pluginState.set({ plugin: id, version, state: s }, s === state ? 1 : 0);
  }
}

function model(e: { model: string; version?: string }): Record<ModelLabel, string> {
  return { model_name: e.model, model_version: e.version ?? '' };
}
