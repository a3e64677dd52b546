import { freemem } from 'node:os';
import { performance } from 'node:perf_hooks';
import {
  badRequest,
  NucleusError,
  notFound,
  toNucleusError,
  unavailable,
  type Backend,
  type BuiltinModel,
  type CachePolicy,
  type DraftProposerSpec,
  type EmbedRequest,
  type EmbedResult,
  type EventBus,
  type ExtensionPointView,
  type GenerateRequest,
  type GenerationEvent,
  type GenerationModelInfo,
  type GenerationService,
  type GenerationStream,
  type Logger,
  type ModelTransform,
  type SchedulerStrategy,
} from '@nucleus/sdk';
import type { HealthState } from '../../../kernel/health.js';
import { AdmissionGate } from '../../admission/admission-gate.js';
import { BackendSelector, CPU_BACKEND } from '../../backend-selector.js';
import { CircuitBreaker, type BreakerState } from '../../circuit-breaker.js';
import type { MemoryPressure } from '../../memory-pressure.js';
import { defaultModelCacheDir } from '../../model-cache-dir.js';
import { withDefaultCpu } from '../../default-cpu-backend.js';
import { applyModelTransform } from '../../model-transforms.js';
import type { ConfiguredModel } from '../../model-repository.js';
import { chooseGraphStyle, type GraphStyle } from '../graph-style.js';
import type { ModelFormats } from '../../model-formats.js';
import type { GenerationFaultInjection } from './fault-injecting-runner.js';
import type {
  GenerationThreadSpec,
  PrefixCacheSpec,
  SpeculativeSpec,
  WireGenerateRequest,
} from './generation-messages.js';
import type { EventChannel } from './event-channel.js';
import { GenerationWorkerClient, type GenerationThreadReady } from './generation-worker-client.js';
import { GenerationReplicas } from './generation-replicas.js';
import { drain, LifecycleQueue, warmUp } from './generation-lifecycle.js';
import type { StepRecovery } from './generation-loop.js';
import { ReplicaCounters } from './replica-counters.js';
import { CachedReading } from '../../workers/cached-reading.js';
import { isolationFor, replicasFor } from '../../workers/isolation-for.js';
import { FREE_MEMORY_MAX_AGE_MS } from '../../workers/worker-pool.js';
import { DEFAULT_MAX_RESTARTS } from '../../workers/worker-supervisor.js';
import { DEFAULT_WORKER_NICENESS } from '../../workers/worker-handle.js';
import type { PrefixCacheStats } from '../prefix-cache/prefix-cache.js';
import type { SchedulerSettings } from './scheduler.js';

/** What the engine needs from the kernel. */
export interface GenerationEngineOptions {
  /** Reads the effective config at a dotted path; `onChange` lets runtime scheduler changes reach running workers. */
  config: { get(path: string): unknown; onChange?(listener: (path: string, value: unknown) => void): () => void };
  events: EventBus;
  logger: Logger;
  /** Where an open circuit breaker marks the server degraded (`/ready`). */
  health?: HealthState;
  /** Under memory pressure workers run fewer sequences at once and prefix caches keep less. */
  memory?: MemoryPressure;
  backends: ExtensionPointView<Backend>;
  /** Cache policies plugins contribute; the prefix cache uses the one `cache.prefix.policy` names. Without it, no prefix cache. */
  cachePolicies?: ExtensionPointView<CachePolicy>;
  /** Queue strategies plugins contribute; `scheduler.strategy` names the one that orders requests waiting for a slot. */
  strategies?: ExtensionPointView<SchedulerStrategy>;
  /** Graph rewrites plugins contribute; `models[].quantize` names one. */
  transforms?: ExtensionPointView<ModelTransform>;
  /** Speculative decoding methods plugins contribute; `models[].speculative` names one. */
  draftProposers?: ExtensionPointView<DraftProposerSpec>;
  /** The active model formats; configured models load through the one that claims their source. */
  formats: ModelFormats;
  /**
   * Which configured models are LLMs (the rest are tensor models), as the kernel's routing found; without it the
   * engine asks the formats itself at start.
   */
  llmModels?: () => ReadonlySet<string>;
  /** The built-in models plugins contribute; their LLMs and embedding models serve when no model is configured. */
  builtins?: ExtensionPointView<BuiltinModel>;
  /** Serve the built-in LLMs and embedding models when no model is configured. Default true. */
  builtinModels?: boolean;
  /** Where built-in and generated models live; default `$NUCLEUS_CACHE_DIR` or `<repo>/.cache/models`. */
  cacheDir?: string;
  /**
   * Longest gap between two token groups a worker posts. Default 1 ms: a token may wait this long before it leaves
   * the worker, out of the 10 ms it has from being sampled to reaching its client's socket. Steps longer than this
   * (32 streams) post every step; shorter ones (one stream of a tiny model) are grouped, a few steps to a post.
   */
  flushIntervalMs?: number;
  /** Test hook only: decoder runs fail as this says, to exercise recovery on a real model. Never set when serving. */
  faultInjection?: GenerationFaultInjection;
}

/** The model-specific part of a thread spec; backend and scheduler are added when the worker starts. */
type ModelSpec = Pick<GenerationThreadSpec, 'onnxPath' | 'role' | 'decoder' | 'encoder'>;

/** An LLM to open while serving, as a `models[]` config entry gives it. */
export type LlmModelSpec = Pick<
  ConfiguredModel,
  | 'name'
  | 'path'
  | 'backend'
  | 'quantize'
  | 'graphStyle'
  | 'speculative'
  | 'workers'
  | 'isolation'
  | 'tokenizer'
  | 'chatTemplate'
>;

interface ServedModel {
  name: string;
  kind: 'llm' | 'embedding';
  origin: 'builtin' | 'config' | 'runtime';
  /** '1' when first opened, one more at each swap. */
  version: string;
  /** The file or folder it loads from (configured and run-time models). */
  path?: string;
  /** How it was loaded at run time; its settings stand in for a `models[]` entry of the config. */
  spec?: LlmModelSpec;
  /** Swapped out or unloaded: new requests go to its successor (or get 404) while it drains. */
  retired?: boolean;
  created: number;
  state: GenerationModelInfo['state'];
  reason?: string;
  /** Known before the model is open (built-ins); the worker's report replaces it. */
  maxContext: number;
  dimensions?: number;
  chatTemplate: boolean;
  backend?: string;
  /** The backend its sessions run on once open, what was asked for, and why they run elsewhere when they do. */
  running?: { backend: string; requested: string; fallbackReason?: string };
  /** How its graph runs, once prepared (LLMs). */
  graphStyle?: GraphStyle;
  /** The graph and settings to run, for the backend the session is opened on. */
  prepare(backend: string): Promise<ModelSpec>;
  /** The prefix cache's budget as configured (memory pressure lowers what applies); absent without a cache. */
  cacheBytes?: number;
  /** Fails generations fast (503 `circuit_open`) while the model keeps failing. */
  breaker: CircuitBreaker;
  /** Its workers once started: one per replica (`workers.perModel`, `models[].workers`). */
  replicas?: GenerationReplicas;
  starting?: Promise<GenerationReplicas>;
  /** Each replica's prefix cache as it last reported, by replica id. */
  cacheStats: Map<number, PrefixCacheStats>;
  /** Counters of replica caches that are gone (retired, or restarted empty), so the model's totals never go down. */
  cacheBase: { hits: number; misses: number; evictions: number };
  /** How its replicas got through steps that failed (allocation failures), counted since the model started. */
  recovery: ReplicaCounters<keyof StepRecovery>;
}

/** The health condition a model's backend fallback is reported under, as for a tensor model's version. */
function backendKey(name: string): string {
  return `backend:${name}@1`;
}

/** A `models[]` entry the generation engine serves. */
interface ConfiguredLlm {
  name: string;
  path: string;
  backend?: string;
  graphStyle?: GraphStyle;
  quantize?: string;
  /** Replaces the model's own chat template. */
  chatTemplate?: string;
  /** Format-specific keys (`tokenizer` …), handed to the format. */
  [key: string]: unknown;
}

const LIMITS = { maxN: 16, maxStop: 16 };

const RECOVERY_COUNTERS = ['cacheFlushes', 'splits', 'failedAlone'] as const satisfies readonly (keyof StepRecovery)[];

/**
 * The text-generation engine: one worker thread per model runs the continuous-batching loop (or the embedding
 * runs); this main-thread side only validates, admits, relays token groups and cancels. It is the kernel's
 * {@link GenerationService}; API plugins reach it through `Services.generation`.
 */
export class GenerationEngine implements GenerationService {
  readonly #models = new Map<string, ServedModel>();
  readonly #selector: BackendSelector;
  readonly #log: Logger;
  readonly #cacheDir: string;
  #offConfig: (() => void) | undefined;
  /** Speculation totals last reported per model, so events carry what changed. */
  readonly #specTotals = new Map<string, { drafts: number; draftTokens: number; acceptedTokens: number }>();
  #offMemory: (() => void) | undefined;
  #stopped = false;
  /** The host's free memory for routing, read at most every {@link FREE_MEMORY_MAX_AGE_MS} (a request is routed per read). */
  readonly #hostFree = new CachedReading(freemem, FREE_MEMORY_MAX_AGE_MS);
  /** Server-wide admission of generations: `scheduler.maxRunning` run, the rest wait (queue.*). */
  readonly #gate: AdmissionGate;
  /** Run-time loads, swaps and unloads, one at a time per model name. */
  readonly #lifecycle = new LifecycleQueue();
  /** Replicas of swapped-out and unloaded models still finishing their generations; `stop` closes them too. */
  readonly #draining = new Set<GenerationReplicas>();

  constructor(private readonly options: GenerationEngineOptions) {
    this.#log = options.logger.child({ component: 'generation' });
    this.#selector = new BackendSelector(withDefaultCpu(options.backends), {
      events: options.events,
      logger: this.#log,
    });
    this.#cacheDir = options.cacheDir ?? defaultModelCacheDir();
    this.#gate = new AdmissionGate({
      config: options.config,
      strategies: options.strategies,
      onDepth: (depth) => {
        for (const priority of ['high', 'normal', 'low'] as const)
          options.events.emit('queue.depth', { priority, depth: depth[priority] });
      },
    });
  }

  /** Generations holding a running slot, and those waiting for one. */
  get admission(): { running: number; waiting: number; shedding: boolean } {
    return { running: this.#gate.running, waiting: this.#gate.waiting, shedding: this.#gate.queue.isShedding };
  }

  /**
   * Registers the models: configured LLMs are opened now (a failure marks that model failed and the rest go on);
   * built-ins start on their first request, so a server that never generates never pays for them.
   */
  async start(): Promise<void> {
    this.#stopped = false;
    const configured = (this.options.config.get('models') as ConfiguredLlm[] | undefined) ?? [];
    const llmNames = this.options.llmModels?.() ?? (await this.#llmsAmong(configured));
    const llms = configured.filter((m) => llmNames.has(m.name));
    for (const m of llms) this.#add(this.#configuredModel(m));
    if ((this.options.builtinModels ?? true) && configured.length === 0) {
      for (const { value: builtin } of this.options.builtins?.list() ?? []) {
        if (builtin.kind === 'llm') this.#add(this.#builtinLlm(builtin));
        else if (builtin.kind === 'embedding') this.#add(this.#builtinEmbedding(builtin));
      }
    }
    this.#offConfig = this.options.config.onChange?.((path) => {
      if (path.startsWith('scheduler.')) for (const w of this.#allWorkers()) w.configure(this.#schedulerSettings());
      if (path === 'cache.prefix.maxBytes') {
        for (const m of this.#models.values()) {
          if (m.cacheBytes === undefined) continue;
          m.cacheBytes = this.#prefixCacheBytes(m);
          for (const w of m.replicas?.all ?? []) w.configurePrefixCache(this.#shrink(m.cacheBytes));
        }
      }
      // Replicas follow `workers.perModel` while serving: added ones open first, retired ones finish their generations.
      if (path === 'workers.perModel' || path === 'workers' || path === 'models') {
        for (const m of this.#models.values()) {
          if (m.kind !== 'llm' || !m.replicas) continue;
          m.replicas
            .resize(this.#replicaCount(m))
            .catch((err: unknown) =>
              this.#log.error({ model: m.name, err: (err as Error).message }, 'replicas could not be resized'),
            );
        }
      }
    });
    // Pressure starting or ending reaches running workers at once: fewer sequences per step, a smaller cache.
    this.#offMemory = this.options.memory?.onChange(() => {
      for (const m of this.#models.values()) {
        for (const w of m.replicas?.all ?? []) {
          w.configure(this.#schedulerSettings());
          if (m.cacheBytes !== undefined) w.configurePrefixCache(this.#shrink(m.cacheBytes));
        }
      }
    });
    await Promise.all(llms.map((m) => this.#worker(this.#models.get(m.name)!).catch(() => undefined)));
  }

  // The configured models whose format loads them as LLMs, for an engine used without the kernel's routing.
  async #llmsAmong(configured: readonly ConfiguredLlm[]): Promise<Set<string>> {
    const names = new Set<string>();
    for (const m of configured) {
      const kind = await this.options.formats.resolve(m.path).then(
        (r) => r.match.kind,
        () => undefined,
      );
      if (kind === 'llm') names.add(m.name);
    }
    return names;
  }

  /** Stops every worker; requests still running end with 503 `model_unloading`. */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#offConfig?.();
    this.#offMemory?.();
    this.#gate.queue.rejectAll(unavailable('server_stopping', 'the server is shutting down'));
    const pools = [
      ...[...this.#models.values()].map((m) => m.replicas).filter((p) => p !== undefined),
      ...this.#draining,
    ];
    for (const name of this.#models.keys()) {
      this.options.health?.clear(`breaker:${name}`);
      this.options.health?.clear(backendKey(name));
    }
    this.#models.clear();
    await Promise.all(pools.map((p) => p.close()));
  }

  #allWorkers(): GenerationWorkerClient[] {
    return [...this.#models.values()].flatMap((m) => m.replicas?.all ?? []);
  }

  list(): GenerationModelInfo[] {
    return [...this.#models.values()].map((m) => this.#info(m));
  }

  get(name: string): GenerationModelInfo {
    return this.#info(this.#find(name));
  }

  async generate(request: GenerateRequest, signal?: AbortSignal): Promise<GenerationStream> {
    const [stream] = await this.#admit([request], signal);
    return stream!;
  }

  async generateBatch(requests: readonly GenerateRequest[], signal?: AbortSignal): Promise<GenerationStream[]> {
    if (!Array.isArray(requests) || requests.length === 0)
      throw badRequest('missing_prompt', 'the request needs at least one prompt', 'prompt');
    const model = requests[0]!.model;
    if (requests.some((r) => r.model !== model))
      throw badRequest('invalid_model', 'the generations of one request must all use one model', 'model');
    const capacity = this.#gate.capacity;
    if (requests.length > capacity) {
      throw badRequest(
        'too_many_prompts',
        `the request has ${requests.length} prompts, but at most ${capacity} generations run at once (scheduler.maxRunning); send at most ${capacity} prompts per request`,
        'prompt',
      );
    }
    return this.#admit(requests, signal);
  }

  // Admits the generations as one unit: one queue entry costing a running slot each, all submitted together;
  // when one is refused, those already submitted are cancelled and every slot is given back.
  async #admit(requests: readonly GenerateRequest[], signal?: AbortSignal): Promise<GenerationStream[]> {
    const requested = this.#find(requests[0]!.model);
    if (requested.kind !== 'llm')
      throw badRequest(
        'model_cannot_generate',
        `model '${requested.name}' is an embedding model; it cannot generate text`,
        'model',
      );
    const wires = requests.map(toWire);
    const first = requests[0]!;
    const model = this.#pass(requested, first.requestId);
    const breaker = model.breaker;
    let slot: Awaited<ReturnType<AdmissionGate['acquire']>>;
    try {
      slot = await this.#gate.acquire({
        priority: wires[0]!.priority,
        cost: wires.length,
        ...(first.deadlineMs !== undefined && { deadlineMs: first.deadlineMs }),
        ...(signal !== undefined && { signal }),
      });
    } catch (err) {
      // Shed, timed out or cancelled in the queue: nothing learnt about the model.
      breaker.ignored();
      throw err;
    }
    const admittedAt = performance.now();
    let admitted: Awaited<ReturnType<GenerationWorkerClient['generate']>>[];
    try {
      const replicas = await this.#worker(this.#serving(model));
      const settled = await Promise.allSettled(wires.map((wire) => replicas.generate(wire, signal)));
      const refused = settled.find((r) => r.status === 'rejected');
      if (refused) {
        for (const r of settled) if (r.status === 'fulfilled') void r.value.events[Symbol.asyncIterator]().return?.();
        throw refused.reason;
      }
      admitted = settled.map((r) => (r as PromiseFulfilledResult<(typeof admitted)[number]>).value);
    } catch (err) {
      slot.release();
      breaker.failed(err);
      throw err;
    }
    // A cancelled request frees its slots even when nobody reads its streams any more.
    signal?.addEventListener(
      'abort',
      () => {
        slot.release();
        breaker.ignored();
      },
      { once: true },
    );
    return admitted.map(({ admission, events }, i) => {
      const request = requests[i]!;
      const id = randomId();
      const priority = request.priority ?? 'normal';
      this.options.events.emit('generation.start', {
        model: model.name,
        requestId: request.requestId ?? id,
        promptTokens: admission.promptTokens,
        ...(admission.cachedTokens !== undefined && { cachedPromptTokens: admission.cachedTokens }),
        maxTokens: admission.maxTokens,
        priority,
      });
      return new AdmittedGeneration(id, model.name, admission.promptTokens, admission.maxTokens, events, (summary) => {
        slot.release(1);
        if (summary.error !== undefined) breaker.failed(summary.error, failureKeyOf(summary.error));
        else if (summary.finishReason === 'abort') breaker.ignored();
        else breaker.succeeded();
        this.options.events.emit('generation.end', {
          model: model.name,
          requestId: request.requestId ?? id,
          promptTokens: admission.promptTokens,
          completionTokens: summary.completionTokens,
          ...(summary.firstTokenAt !== undefined && { ttftMs: summary.firstTokenAt - admittedAt }),
          ...(summary.completionTokens > 1 &&
            summary.firstTokenAt !== undefined && {
              meanItlMs: (summary.endedAt - summary.firstTokenAt) / (summary.completionTokens - 1),
            }),
          durationMs: summary.endedAt - admittedAt,
          finishReason: summary.finishReason,
          priority,
          ...(summary.errorCode !== undefined && { errorCode: summary.errorCode }),
        });
      });
    });
  }

  async embed(request: EmbedRequest, signal?: AbortSignal): Promise<EmbedResult> {
    const model = this.#find(request.model);
    const inputs = normalizeInputs(request.input);
    if (request.dimensions !== undefined && (!Number.isInteger(request.dimensions) || request.dimensions < 1)) {
      throw badRequest('invalid_dimensions', 'dimensions must be a positive integer', 'dimensions');
    }
    if (request.pooling !== undefined && !['mean', 'cls', 'last'].includes(request.pooling)) {
      throw badRequest(
        'invalid_pooling',
        `pooling must be mean, cls or last, not ${JSON.stringify(request.pooling)}`,
        'pooling',
      );
    }
    const replicas = await this.#worker(this.#serving(model));
    const { vectors, promptTokens } = await replicas.embed(
      {
        inputs,
        normalize: request.normalize ?? true,
        ...(request.pooling !== undefined && { pooling: request.pooling }),
        ...(request.dimensions !== undefined && { dimensions: request.dimensions }),
      },
      signal,
    );
    return { model: model.name, embeddings: vectors, promptTokens };
  }

  async releaseConversation(conversationId: string, model?: string): Promise<number> {
    if (typeof conversationId !== 'string' || conversationId.length === 0)
      throw badRequest('invalid_conversation_id', 'conversation_id must be a non-empty string', 'conversation_id');
    const models = model === undefined ? [...this.#models.values()] : [this.#find(model)];
    const freed = await Promise.all(models.map((m) => m.replicas?.releaseConversation(conversationId) ?? 0));
    return freed.reduce((a, b) => a + b, 0);
  }

  /**
   * Ends one of a model's workers (the replica with index `replica`, default the first taking requests) the way a
   * crash would, for tests and operators: it restarts, and what it held without a token runs on the other replicas.
   */
  async killWorker(name: string, replica?: number): Promise<void> {
    const workers = this.#find(name).replicas?.workers ?? [];
    const worker = replica === undefined ? workers[0] : workers.find((w) => w.id === replica);
    if (replica !== undefined && !worker)
      throw notFound(
        'replica_not_found',
        `model '${name}' has no replica ${replica} (replicas: ${workers.map((w) => w.id).join(', ') || 'none'})`,
      );
    await worker?.kill();
  }

  /**
   * Opens an LLM while serving, from a spec shaped like a `models[]` entry, and serves it once its replicas are open
   * and warmed up. 409 when the name is taken; 400 saying why when it cannot be loaded.
   */
  load(spec: LlmModelSpec): Promise<GenerationModelInfo> {
    return this.#lifecycle.run(spec.name, async () => {
      if (this.#models.has(spec.name))
        throw new NucleusError(
          409,
          'model_exists',
          `a model named '${spec.name}' is already served; swap it (POST /admin/models/${spec.name}/swap) or unload it first`,
        );
      const model = await this.#openBeside(spec, '1');
      this.#models.set(spec.name, model);
      this.#log.info({ model: spec.name, path: spec.path }, 'generation model loaded at run time');
      return this.#info(model);
    });
  }

  /**
   * Replaces a served model with the one `spec` names: its replicas open beside the old ones and are warmed up with a
   * one-token generation; then new requests (and those waiting for a slot) go to it from one instant on, while the
   * generations already running finish on the old replicas (up to `drainTimeoutMs`), which then close. A load or
   * warm-up that fails leaves the old model serving and throws 400 saying why.
   */
  swap(
    name: string,
    spec: Omit<LlmModelSpec, 'name'>,
    options: { drainTimeoutMs?: number } = {},
  ): Promise<GenerationModelInfo> {
    return this.#lifecycle.run(name, async () => {
      const old = this.#find(name);
      const model = await this.#openBeside({ ...spec, name }, String(Number(old.version) + 1 || 2), old);
      old.retired = true;
      this.#models.set(name, model);
      // The old breaker's state belonged to the old files.
      this.options.health?.clear(`breaker:${name}`);
      this.#log.info(
        { model: name, from: old.version, to: model.version, path: spec.path },
        'generation model swapped; the old version drains',
      );
      await this.#retire(old, options.drainTimeoutMs);
      return this.#info(model);
    });
  }

  /**
   * Stops serving a model: new requests get 404 at once, generations already running finish (up to
   * `drainTimeoutMs`, after which they end with a 503 `model_unloading` error), then its workers close.
   */
  unload(name: string, options: { drainTimeoutMs?: number } = {}): Promise<void> {
    return this.#lifecycle.run(name, async () => {
      const model = this.#find(name);
      model.retired = true;
      this.#models.delete(name);
      this.options.health?.clear(`breaker:${name}`);
      this.options.health?.clear(backendKey(name));
      await this.#retire(model, options.drainTimeoutMs);
    });
  }

  // Opens a model from a spec beside whatever serves under its name, and warms up each replica.
  async #openBeside(spec: LlmModelSpec, version: string, replacing?: ServedModel): Promise<ServedModel> {
    const { name } = spec;
    // In place: its `prepare` writes to the object `#configuredModel` made.
    const model = this.#complete(
      Object.assign(this.#configuredModel(spec), { origin: 'runtime' as const, version, spec }),
    );
    try {
      const replicas = await this.#worker(model);
      if (model.kind === 'llm')
        await warmUp(replicas.workers, toWire({ model: name, prompt: 'Hello', maxTokens: 1, temperature: 0 }));
      return model;
    } catch (err) {
      await model.replicas?.close();
      model.replicas = undefined;
      const error = toNucleusError(err);
      // A failed open has been reported (`model.failed`) and kept its reason; a failed warm-up is reported here.
      const opened = model.state !== 'failed';
      const reason = opened ? `its warm-up generation failed: ${error.message}` : (model.reason ?? error.message);
      if (opened) this.options.events.emit('model.failed', { model: name, version, error: reason });
      const kept = replacing ? `; version ${replacing.version} keeps serving` : '';
      throw badRequest(
        'model_load_failed',
        `model '${name}' could not be loaded from ${spec.path}: ${reason}${kept}`,
        'source',
      );
    }
  }

  // Lets a swapped-out or unloaded model finish what it runs, then closes its workers.
  async #retire(
    model: ServedModel,
    drainTimeoutMs = (this.options.config.get('plugins.drainTimeoutMs') as number | undefined) ?? 10_000,
  ): Promise<void> {
    const replicas = model.replicas ?? (await model.starting?.catch(() => undefined));
    if (replicas) {
      this.#draining.add(replicas);
      const drained = await drain(() => replicas.all, drainTimeoutMs);
      if (!drained)
        this.#log.warn(
          { model: model.name, version: model.version, drainTimeoutMs },
          'drain timeout ran out; generations still running end with model_unloading',
        );
      await replicas.close();
      this.#draining.delete(replicas);
    }
    model.replicas = undefined;
    this.options.events.emit('model.unloaded', { model: model.name, version: model.version });
  }

  #find(name: string): ServedModel {
    const model = this.#models.get(name);
    if (!model) {
      const known = [...this.#models.keys()].join(', ') || 'none';
      throw notFound('model_not_found', `The model '${name}' does not exist (served here: ${known})`);
    }
    return model;
  }

  #add(model: Omit<ServedModel, 'breaker' | 'cacheStats' | 'cacheBase' | 'recovery'>): void {
    this.#models.set(model.name, this.#complete(model));
  }

  // A model with its breaker and counters, not yet served under its name.
  #complete(model: Omit<ServedModel, 'breaker' | 'cacheStats' | 'cacheBase' | 'recovery'>): ServedModel {
    const name = model.name;
    const breaker = new CircuitBreaker({
      label: `model '${name}'`,
      settings: () => ({
        failureThreshold: (this.options.config.get('breaker.failureThreshold') as number | undefined) ?? 5,
        cooldownMs: (this.options.config.get('breaker.cooldownMs') as number | undefined) ?? 10_000,
      }),
      onChange: (state, reason) => this.#breakerChanged(name, state, reason),
    });
    // In place: a configured model's `prepare` writes to this very object.
    Object.assign(model, { breaker });
    Object.assign(model, {
      cacheStats: new Map(),
      cacheBase: { hits: 0, misses: 0, evictions: 0 },
      recovery: new ReplicaCounters(RECOVERY_COUNTERS),
    });
    return model as ServedModel;
  }

  // The model that serves what was admitted for `model`: itself, or once it is retired the one that replaced it.
  #serving(model: ServedModel): ServedModel {
    if (!model.retired) return model;
    const next = this.#models.get(model.name);
    if (next) return next;
    throw notFound('model_not_found', `The model '${model.name}' was unloaded`);
  }

  // Its replicas: the run-time spec's `workers`, else `models[].workers` or `workers.perModel`.
  #replicaCount(model: ServedModel): number {
    return model.spec?.workers ?? replicasFor(this.options.config, model.name);
  }

  // As the tensor engine does: an open breaker makes /ready degraded with why, and the event lets dashboards follow.
  #breakerChanged(name: string, state: BreakerState, reason: string): void {
    const key = `breaker:${name}`;
    if (state === 'closed') this.options.health?.clear(key);
    else
      this.options.health?.set({
        key,
        severity: 'degraded',
        reason: `model '${name}': circuit breaker ${state}: ${reason}`,
      });
    this.options.events.emit('breaker.state', { model: name, version: '1', state, reason });
    this.#log[state === 'closed' ? 'info' : 'warn']({ model: name, state, reason }, 'circuit breaker');
  }

  // The model that takes a request for `model`: itself when its breaker lets the request through, otherwise its
  // configured fallback (`models[].fallback`, another LLM served here) when that one's breaker does; else the
  // first refusal. The breaker that let it through must hear how the request ended.
  #pass(model: ServedModel, requestId: string | undefined): ServedModel {
    try {
      model.breaker.admit();
      return model;
    } catch (err) {
      const configured = (this.options.config.get('models') as { name: string; fallback?: string }[] | undefined) ?? [];
      const name = configured.find((m) => m.name === model.name)?.fallback;
      const fallback = name === undefined || name === model.name ? undefined : this.#models.get(name);
      if (fallback?.kind !== 'llm' || fallback.state === 'failed') throw err;
      try {
        fallback.breaker.admit();
      } catch {
        // The fallback is failing too: the client hears about the model it asked for.
        throw err;
      }
      const reason = `${(err as NucleusError).code}: ${(err as NucleusError).message}`;
      this.options.events.emit('model.fallback', {
        model: model.name,
        fallback: fallback.name,
        reason,
        ...(requestId !== undefined && { requestId }),
      });
      this.#log.warn(
        { model: model.name, fallback: fallback.name, reason },
        'serving the request with the fallback model',
      );
      return fallback;
    }
  }

  #worker(model: ServedModel): Promise<GenerationReplicas> {
    if (this.#stopped) return Promise.reject(unavailable('server_stopping', 'the server is shutting down'));
    // A retired model is never opened again: its replicas only finish what they hold.
    if (model.retired && !model.replicas)
      return Promise.reject(unavailable('model_unloading', `model '${model.name}' was unloaded`));
    if (model.replicas && model.state === 'ready') return Promise.resolve(model.replicas);
    model.starting ??= this.#open(model).finally(() => (model.starting = undefined));
    return model.starting;
  }

  async #open(model: ServedModel): Promise<GenerationReplicas> {
    model.state = 'loading';
    this.options.events.emit('model.loading', { model: model.name, version: model.version });
    const started = performance.now();
    try {
      const speculative = this.#speculativeSpec(model.name, model.spec);
      const requested = model.backend ?? (this.options.config.get('backend') as string | undefined) ?? 'auto';
      const selection = await this.#selector.select(requested);
      const spec = await model.prepare(selection.backend.name);
      const cpu = this.#selector.find(CPU_BACKEND);
      const size = spec.role === 'decoder' ? this.#replicaCount(model) : 1;
      const decoder = spec.decoder?.config;
      // Each replica gets a spec of its own: runtime changes (scheduler, cache size) are written into it.
      const create = (
        id: number,
        reroute: (from: GenerationWorkerClient) => GenerationWorkerClient | undefined,
      ): GenerationWorkerClient =>
        new GenerationWorkerClient(
          {
            label: model.name,
            ...spec,
            backend: {
              name: selection.backend.name,
              requested,
              options: selection.backend.sessionOptions(),
              ...(selection.fallbackReason !== undefined && { fallbackReason: selection.fallbackReason }),
            },
            ...(cpu &&
              selection.backend.name !== CPU_BACKEND && {
                fallback: { name: cpu.name, options: cpu.sessionOptions() },
              }),
            scheduler: this.#schedulerSettings(),
            flushIntervalMs: this.options.flushIntervalMs ?? 1,
            ...(spec.role === 'decoder' && this.#prefixCacheSpec(model)),
            ...(spec.role === 'decoder' && speculative),
            ...(this.options.faultInjection && { faultInjection: this.options.faultInjection }),
          },
          {
            id,
            reroute,
            logger: this.#log.child({ model: model.name, replica: id }),
            isolation: model.spec?.isolation ?? isolationFor(this.options.config, model.name),
            heartbeatTimeoutMs: () =>
              (this.options.config.get('workers.heartbeatTimeoutMs') as number | undefined) ?? 3000,
            niceness: () =>
              (this.options.config.get('workers.niceness') as number | undefined) ?? DEFAULT_WORKER_NICENESS,
            maxConsecutiveRestarts: () =>
              (this.options.config.get('workers.maxRestarts') as number | undefined) ?? DEFAULT_MAX_RESTARTS,
            onHealth: (health) => {
              this.options.events.emit('worker.health', { model: model.name, worker: id, ...health });
              if (health.healthy) model.replicas?.healthChanged();
            },
            observer: {
              onGroup: ({ steps, cache, speculation, recovery, incarnation }) => {
                if (speculation) this.#speculationStats(model.name, id, speculation);
                if (recovery) model.recovery.report(id, incarnation, recovery);
                const replicas = model.replicas;
                const stepRecovery = this.#recoveryTotals(model);
                this.options.events.emit('engine.stats', {
                  model: model.name,
                  running: replicas?.running ?? 0,
                  waiting: replicas?.waiting ?? 0,
                  ...(RECOVERY_COUNTERS.some((k) => stepRecovery[k] > 0) && { stepRecovery }),
                });
                if (cache) {
                  const last = model.cacheStats.get(id);
                  // A restarted replica counts from zero again: what it had counted stays in the totals.
                  if (
                    last &&
                    (cache.hits < last.hits || cache.misses < last.misses || cache.evictions < last.evictions)
                  )
                    this.#keepCounters(model, last);
                  model.cacheStats.set(id, cache);
                  this.options.events.emit('cache.stats', {
                    name: 'prefix',
                    model: model.name,
                    ...this.#cacheTotals(model),
                  });
                }
                for (const s of steps) {
                  this.options.events.emit('engine.steps', {
                    model: model.name,
                    phase: s.phase,
                    steps: s.steps,
                    sequences: s.steps > 0 ? s.sequences / s.steps : 0,
                    tokens: s.tokens,
                    durationMs: s.durationMs,
                  });
                }
              },
            },
          },
        );
      const replicas =
        model.replicas ??
        new GenerationReplicas(size, {
          create,
          logger: this.#log.child({ model: model.name }),
          routing: () => this.#routing(),
          freeMemoryBytes: () => (selection.backend.name === CPU_BACKEND ? this.#hostFree.read() : undefined),
          ...(decoder && {
            kvBytesPerToken:
              2 * decoder.numLayers * decoder.numKvHeads * decoder.headDim * (decoder.kvDtype === 'float16' ? 2 : 4),
            maxContext: decoder.maxContext,
          }),
        });
      model.replicas = replicas;
      const ready = await replicas.start();
      if (this.#stopped) {
        await replicas.close();
        throw unavailable('server_stopping', 'the server is shutting down');
      }
      if (ready.prefixCacheError !== undefined)
        this.#log.warn(
          { model: model.name, reason: ready.prefixCacheError },
          'prefix cache off: its cache policy could not be loaded in the worker',
        );
      model.maxContext = ready.maxContext;
      this.#backendChosen(model, requested, selection.backend.name, ready);
      if (ready.dimensions !== undefined) model.dimensions = ready.dimensions;
      model.state = 'ready';
      delete model.reason;
      // The size may have changed while the model was loading.
      if (spec.role === 'decoder' && replicas.workers.length !== this.#replicaCount(model)) {
        replicas
          .resize(this.#replicaCount(model))
          .catch((err: unknown) =>
            this.#log.error({ model: model.name, err: (err as Error).message }, 'replicas could not be resized'),
          );
      }
      const durationMs = performance.now() - started;
      this.options.events.emit('model.loaded', {
        model: model.name,
        version: model.version,
        durationMs,
        backend: ready.backend,
      });
      this.#log.info(
        { model: model.name, backend: ready.backend, replicas: size, durationMs: Math.round(durationMs) },
        'generation model ready',
      );
      return replicas;
    } catch (err) {
      const error = toNucleusError(err);
      model.state = 'failed';
      model.reason = error.message;
      model.replicas = undefined;
      delete model.running;
      this.options.health?.clear(backendKey(model.name));
      this.options.events.emit('model.failed', { model: model.name, version: model.version, error: error.message });
      this.#log.error({ model: model.name, err: error.message }, 'generation model failed to load');
      throw new NucleusError(503, 'model_unavailable', `model '${model.name}' could not be loaded: ${error.message}`);
    }
  }

  // Where the model's sessions run: like a tensor model's, a fallback from the backend asked for (by the selector, or
  // by ORT rejecting its provider) leaves /ready degraded with the reason under `backend:<model>@1`.
  #backendChosen(model: ServedModel, requested: string, selected: string, ready: GenerationThreadReady): void {
    const fallbackReason = ready.fallbackReason;
    model.running = { backend: ready.backend, requested, ...(fallbackReason !== undefined && { fallbackReason }) };
    if (ready.backend !== selected && fallbackReason !== undefined)
      this.#selector.reportFallback(requested, fallbackReason);
    const key = backendKey(model.name);
    if (fallbackReason !== undefined)
      this.options.health?.set({
        key,
        severity: 'degraded',
        reason: `model '${model.name}' version '1': ${fallbackReason}`,
      });
    else this.options.health?.clear(key);
  }

  // The routing strategy `workers.llmRouting` names when a plugin contributes one with `pickWorker`; otherwise the
  // replicas' own least-busy choice.
  #routing(): SchedulerStrategy | undefined {
    const name = (this.options.config.get('workers.llmRouting') as string | undefined) ?? 'prefix-affinity';
    const strategy = this.options.strategies?.find(name)?.value;
    return strategy?.pickWorker ? strategy : undefined;
  }

  // The prefix caches of a model's replicas taken together: sizes of those running now, counters since the model
  // started (those of retired and restarted replicas included).
  #cacheTotals(model: ServedModel): Omit<PrefixCacheStats, 'released'> {
    const live = new Set((model.replicas?.all ?? []).map((w) => w.id));
    const total = { ...model.cacheBase, bytes: 0, capacityBytes: 0, entries: 0 };
    for (const [id, c] of model.cacheStats) {
      if (!live.has(id)) {
        this.#keepCounters(model, c);
        model.cacheStats.delete(id);
        continue;
      }
      for (const k of Object.keys(total) as (keyof typeof total)[]) total[k] += c[k];
    }
    return total;
  }

  // The step-recovery counters of a model's replicas taken together, since the model started.
  #recoveryTotals(model: ServedModel): StepRecovery {
    return model.recovery.totals((model.replicas?.all ?? []).map((w) => w.id));
  }

  #keepCounters(model: ServedModel, gone: PrefixCacheStats): void {
    model.cacheBase.hits += gone.hits;
    model.cacheBase.misses += gone.misses;
    model.cacheBase.evictions += gone.evictions;
  }

  // The prefix cache of a new decoder thread, or nothing when it is off or no usable policy is contributed.
  #prefixCacheSpec(served: ServedModel): { prefixCache: PrefixCacheSpec } | undefined {
    const model = served.name;
    const get = (path: string) => this.options.config.get(path);
    if (get('cache.prefix.enabled') === false) return undefined;
    const name = (get('cache.prefix.policy') as string | undefined) ?? 'lru';
    const policy = this.options.cachePolicies?.find(name)?.value;
    if (!policy?.module) {
      const why = policy
        ? `the '${name}' cache policy has no module a worker thread can load`
        : `no plugin contributes a cache policy named '${name}' (cache-lru provides 'lru')`;
      this.#log.warn({ model, reason: why }, 'prefix cache off');
      return undefined;
    }
    served.cacheBytes = this.#prefixCacheBytes(served);
    return {
      prefixCache: {
        maxBytes: this.#shrink(served.cacheBytes),
        blockTokens: (get('cache.prefix.blockTokens') as number | undefined) ?? 16,
        policy: name,
        policyModule: policy.module,
      },
    };
  }

  // Speculative decoding of a new decoder thread, as `models[].speculative` names it; a name no plugin offers fails the load.
  #speculativeSpec(model: string, loaded?: LlmModelSpec): { speculative: SpeculativeSpec } | undefined {
    const configured =
      (this.options.config.get('models') as { name: string; speculative?: string }[] | undefined) ?? [];
    // A model loaded at run time has its own settings; the config's entry of that name is not its.
    const method = loaded ? loaded.speculative : configured.find((m) => m.name === model)?.speculative;
    if (method === undefined) return undefined;
    const found = this.options.draftProposers?.find(method)?.value;
    if (!found) {
      const available = [...new Set((this.options.draftProposers?.list() ?? []).map((c) => c.name))].sort();
      throw new NucleusError(
        422,
        'speculative_method_unavailable',
        `model '${model}' asks for speculative "${method}", but no active plugin provides a speculative decoding method by that name ` +
          `(available: ${available.length > 0 ? available.join(', ') : 'none; the spec-decode plugin provides ngram'})`,
      );
    }
    const { module, options, numSpeculativeTokens, maxBatch } = found;
    return { speculative: { method, module, options: { ...options }, numSpeculativeTokens, maxBatch } };
  }

  // A replica's speculation totals as `spec.acceptance` events of what changed; a new worker starts from zero.
  #speculationStats(
    model: string,
    replica: number,
    totals: { drafts: number; draftTokens: number; acceptedTokens: number },
  ): void {
    const key = `${model}\u0000${replica}`;
    const last = this.#specTotals.get(key);
    const since = last && totals.drafts >= last.drafts ? last : { drafts: 0, draftTokens: 0, acceptedTokens: 0 };
    this.#specTotals.set(key, totals);
    const method =
      (this.options.config.get('models') as { name: string; speculative?: string }[] | undefined)?.find(
        (m) => m.name === model,
      )?.speculative ?? 'unknown';
    this.options.events.emit('spec.acceptance', {
      model,
      method,
      drafts: totals.drafts - since.drafts,
      proposedTokens: totals.draftTokens - since.draftTokens,
      acceptedTokens: totals.acceptedTokens - since.acceptedTokens,
    });
  }

  // `cache.prefix.maxBytes` for each replica, or by default 80% of the memory free now, shared by the LLMs served
  // and by this model's replicas.
  #prefixCacheBytes(model: ServedModel): number {
    const configured = this.options.config.get('cache.prefix.maxBytes');
    if (typeof configured === 'number') return configured;
    const llms = [...this.#models.values()].filter((m) => m.kind === 'llm').length;
    return Math.floor((freemem() * 0.8) / Math.max(1, llms) / this.#replicaCount(model));
  }

  // A size as it applies now: halved under memory pressure.
  #shrink(size: number): number {
    return this.options.memory?.shrink(size) ?? size;
  }

  #schedulerSettings(): SchedulerSettings {
    const get = (path: string) => this.options.config.get(path);
    const strategy = get('scheduler.strategy');
    return {
      maxRunning: this.#shrink((get('scheduler.maxRunning') as number | undefined) ?? 32),
      maxBatchSize: this.#shrink((get('scheduler.maxBatchSize') as number | undefined) ?? 32),
      batchWindowMs: (get('scheduler.batchWindowMs') as number | undefined) ?? 50,
      // Strategies from plugins run on the main thread; inside the worker only these two exist.
      strategy: strategy === 'fifo' ? 'fifo' : 'priority',
    };
  }

  #info(m: ServedModel): GenerationModelInfo {
    return {
      name: m.name,
      kind: m.kind,
      origin: m.origin,
      version: m.version,
      ...(m.path !== undefined && { path: m.path }),
      state: m.state,
      ...(m.reason !== undefined && { reason: m.reason }),
      maxContext: m.maxContext,
      ...(m.dimensions !== undefined && { dimensions: m.dimensions }),
      chatTemplate: m.chatTemplate,
      ...(m.graphStyle !== undefined && { graphStyle: m.graphStyle }),
      ...(m.running && {
        backend: m.running.backend,
        requestedBackend: m.running.requested,
        ...(m.running.fallbackReason !== undefined && { fallbackReason: m.running.fallbackReason }),
      }),
      created: m.created,
      running: m.replicas?.running ?? 0,
      waiting: m.replicas?.waiting ?? 0,
      ...(m.kind === 'llm' && { breaker: m.breaker.status(), stepRecovery: this.#recoveryTotals(m) }),
      ...(m.replicas?.workers[0] && { worker: m.replicas.workers[0].status() }),
      ...(m.replicas && { workers: m.replicas.replicas() }),
    };
  }

  // A built-in LLM: its plugin puts its files in the cache on first use, then it loads as a configured model would.
  #builtinLlm(builtin: BuiltinModel): Omit<ServedModel, 'breaker' | 'cacheStats' | 'cacheBase' | 'recovery'> {
    const model = this.#configuredModel(
      { name: builtin.name, path: '' },
      () => builtin.prepare(this.#cacheDir),
      builtin.chatTemplate,
    );
    // Its files are known once written; the info shows no path until then.
    delete model.path;
    return Object.assign(model, {
      origin: 'builtin' as const,
      state: 'idle' as const,
      maxContext: builtin.maxContext ?? 0,
      chatTemplate: true,
      ...(builtin.dimensions !== undefined && { dimensions: builtin.dimensions }),
    });
  }

  // A built-in encoder: a graph without a tokenizer of its own, whose facts its plugin gives.
  #builtinEmbedding(builtin: BuiltinModel): Omit<ServedModel, 'breaker' | 'cacheStats' | 'cacheBase' | 'recovery'> {
    const encoder = builtin.encoder;
    if (!encoder) throw new Error(`built-in embedding model '${builtin.name}' gives no encoder facts`);
    return {
      name: builtin.name,
      kind: 'embedding',
      origin: 'builtin',
      version: '1',
      created: nowS(),
      state: 'idle',
      maxContext: encoder.maxPositions,
      dimensions: encoder.hiddenSize,
      chatTemplate: false,
      prepare: async () => ({ role: 'encoder', onnxPath: await builtin.prepare(this.#cacheDir), encoder }),
    };
  }

  // The graph style a model opens with (see `chooseGraphStyle`), recorded for its info and logged.
  #graphStyle(
    model: Omit<ServedModel, 'breaker' | 'cacheStats' | 'cacheBase' | 'recovery'>,
    of: Parameters<typeof chooseGraphStyle>[0],
  ): GraphStyle {
    const { style, reason } = chooseGraphStyle(of);
    model.graphStyle = style;
    this.#log.info({ model: model.name, graphStyle: style, backend: of.backend, reason }, 'graph style');
    return style;
  }

  // `source` gives the path to load when it is known only at open (a built-in's files are written then); a chat
  // template given here replaces the model's own.
  #configuredModel(
    entry: ConfiguredLlm,
    source: () => Promise<string> = async () => entry.path,
    chatTemplate?: string,
  ): Omit<ServedModel, 'breaker' | 'cacheStats' | 'cacheBase' | 'recovery'> {
    const { name, path, backend, graphStyle, quantize } = entry;
    const model: Omit<ServedModel, 'breaker' | 'cacheStats' | 'cacheBase' | 'recovery'> = {
      name,
      kind: 'llm',
      origin: 'config',
      version: '1',
      path,
      created: nowS(),
      state: 'loading',
      maxContext: 0,
      chatTemplate: false,
      ...(backend !== undefined && { backend }),
      prepare: async (selected) => {
        // A format that builds its graph from weights builds the style the backend runs best; an export brings its own.
        const resolved = await this.options.formats.resolve(await source());
        const style = this.#graphStyle(model, {
          ...(graphStyle && { configured: graphStyle }),
          builtByNucleus: resolved.match.buildsGraph === true,
          backend: selected,
        });
        const loaded = await this.options.formats.loadLlm(resolved, {
          name,
          cacheDir: this.#cacheDir,
          graphStyle: style,
          options: entry,
          logger: this.#log,
        });
        const template = chatTemplate ?? entry.chatTemplate;
        const llm = template === undefined ? loaded : { ...loaded, chatTemplate: template };
        model.maxContext = llm.config.maxContext;
        model.dimensions = llm.config.hiddenSize;
        model.chatTemplate = llm.chatTemplate !== undefined;
        const onnxPath =
          quantize === undefined
            ? llm.onnxPath
            : await applyModelTransform({
                model: name,
                kind: 'llm',
                path: llm.onnxPath,
                transform: quantize,
                transforms: this.options.transforms,
                cacheDir: this.#cacheDir,
                logger: this.#log,
              });
        return {
          role: 'decoder',
          onnxPath,
          decoder: {
            config: llm.config,
            tokenizer: llm.tokenizer,
            ...(llm.chatTemplate !== undefined && { chatTemplate: llm.chatTemplate }),
          },
        };
      },
    };
    return model;
  }
}

/** Checks what the thread cannot check better and turns the request into plain data for it. */
function toWire(r: GenerateRequest): WireGenerateRequest {
  const hasPrompt = r.prompt !== undefined;
  const hasMessages = r.messages !== undefined;
  if (hasPrompt === hasMessages)
    throw badRequest(
      'missing_prompt',
      hasPrompt ? 'send either prompt or messages, not both' : 'the request needs a prompt or messages',
      hasPrompt ? 'messages' : 'prompt',
    );
  if (hasMessages) {
    if (!Array.isArray(r.messages) || r.messages.length === 0)
      throw badRequest('invalid_messages', 'messages must be a non-empty list', 'messages');
    for (const [i, m] of r.messages.entries()) {
      if (typeof m?.role !== 'string' || typeof m.content !== 'string')
        throw badRequest('invalid_messages', `messages[${i}] needs a string role and a string content`, 'messages');
    }
  }
  const n = r.n ?? 1;
  intIn(n, 1, LIMITS.maxN, 'n');
  if (r.temperature !== undefined) numIn(r.temperature, 0, Infinity, 'temperature');
  if (r.topP !== undefined && !(r.topP > 0 && r.topP <= 1))
    throw badRequest('invalid_top_p', 'top_p must be in (0, 1]', 'top_p');
  // -1 is how vLLM spells "off".
  const topK = r.topK === -1 ? 0 : r.topK;
  if (topK !== undefined) intIn(topK, 0, Number.MAX_SAFE_INTEGER, 'top_k');
  if (r.repetitionPenalty !== undefined && !(r.repetitionPenalty > 0))
    throw badRequest('invalid_repetition_penalty', 'repetition_penalty must be greater than 0', 'repetition_penalty');
  if (r.frequencyPenalty !== undefined) numIn(r.frequencyPenalty, -2, 2, 'frequency_penalty');
  if (r.presencePenalty !== undefined) numIn(r.presencePenalty, -2, 2, 'presence_penalty');
  if (r.maxTokens !== undefined) intIn(r.maxTokens, 1, Number.MAX_SAFE_INTEGER, 'max_tokens');
  if (r.seed !== undefined && !Number.isSafeInteger(r.seed))
    throw badRequest('invalid_seed', 'seed must be an integer', 'seed');
  const stop = r.stop ?? [];
  if (!Array.isArray(stop) || stop.some((s) => typeof s !== 'string'))
    throw badRequest('invalid_stop', 'stop must be a string or a list of strings', 'stop');
  if (stop.length > LIMITS.maxStop)
    throw badRequest('invalid_stop', `at most ${LIMITS.maxStop} stop sequences`, 'stop');
  if (r.priority !== undefined && !['high', 'normal', 'low'].includes(r.priority))
    throw badRequest('invalid_priority', 'priority must be high, normal or low', 'priority');
  if (
    r.conversationId !== undefined &&
    (typeof r.conversationId !== 'string' || r.conversationId.length === 0 || r.conversationId.length > 256)
  ) {
    throw badRequest(
      'invalid_conversation_id',
      'conversation_id must be a string of 1 to 256 characters',
      'conversation_id',
    );
  }
  if (
    r.prompt !== undefined &&
    typeof r.prompt !== 'string' &&
    !(Array.isArray(r.prompt) && r.prompt.every((t) => typeof t === 'number'))
  ) {
    throw badRequest('invalid_prompt', 'prompt must be a string or a list of token ids', 'prompt');
  }
  return {
    ...(r.prompt !== undefined && { prompt: r.prompt }),
    ...(r.messages !== undefined && {
      messages: r.messages.map((m) => ({
        role: m.role,
        content: m.content,
        ...(m.name !== undefined && { name: m.name }),
      })),
    }),
    addGenerationPrompt: r.addGenerationPrompt ?? true,
    n,
    priority: r.priority ?? 'normal',
    ...(r.temperature !== undefined && { temperature: r.temperature }),
    ...(r.topP !== undefined && { topP: r.topP }),
    ...(topK !== undefined && { topK }),
    ...(r.seed !== undefined && { seed: r.seed }),
    ...(r.repetitionPenalty !== undefined && { repetitionPenalty: r.repetitionPenalty }),
    ...(r.frequencyPenalty !== undefined && { frequencyPenalty: r.frequencyPenalty }),
    ...(r.presencePenalty !== undefined && { presencePenalty: r.presencePenalty }),
    ...(r.maxTokens !== undefined && { maxTokens: r.maxTokens }),
    stop: stop.filter((s) => s.length > 0),
    ignoreEos: r.ignoreEos ?? false,
    ...(r.conversationId !== undefined && { conversationId: r.conversationId }),
    ...(r.buffered === true && { buffered: true }),
  };
}

function intIn(v: unknown, min: number, max: number, param: string): void {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw badRequest(
      `invalid_${param}`,
      `${param} must be an integer${max === Number.MAX_SAFE_INTEGER ? ` of at least ${min}` : ` from ${min} to ${max}`}`,
      param,
    );
  }
}

function numIn(v: unknown, min: number, max: number, param: string): void {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < min || v > max) {
    throw badRequest(
      `invalid_${param}`,
      `${param} must be a number${max === Infinity ? ` of at least ${min}` : ` from ${min} to ${max}`}`,
      param,
    );
  }
}

function normalizeInputs(input: EmbedRequest['input']): (string | number[])[] {
  const bad = () =>
    badRequest(
      'invalid_input',
      'input must be a string, a list of strings, a list of token ids, or a list of such lists',
      'input',
    );
  if (typeof input === 'string') return [input];
  if (!Array.isArray(input) || input.length === 0) throw bad();
  if (input.every((x) => typeof x === 'number')) return [input as number[]];
  if (input.every((x) => typeof x === 'string' || (Array.isArray(x) && x.every((t) => typeof t === 'number'))))
    return input as (string | number[])[];
  throw bad();
}

function nowS(): number {
  return Math.floor(Date.now() / 1000);
}

function randomId(): string {
  return crypto.randomUUID().replaceAll('-', '');
}

// The key the thread gives the failures of one step, so the requests it ended count once against the breaker.
function failureKeyOf(err: unknown): string | undefined {
  const cause = (err as { cause?: { failure?: unknown } } | undefined)?.cause;
  return typeof cause?.failure === 'string' ? cause.failure : undefined;
}

interface GenerationSummary {
  completionTokens: number;
  firstTokenAt?: number;
  endedAt: number;
  finishReason: 'stop' | 'length' | 'abort' | 'error';
  errorCode?: string;
  /** What the generation failed with. */
  error?: NucleusError;
}

/** An admitted generation: its events, with telemetry taken on the way through. */
class AdmittedGeneration implements GenerationStream {
  readonly created = nowS();

  constructor(
    readonly id: string,
    readonly model: string,
    readonly promptTokens: number,
    readonly maxTokens: number,
    private readonly channel: EventChannel,
    private readonly onEnd: (summary: GenerationSummary) => void,
  ) {}

  async *[Symbol.asyncIterator](): AsyncIterator<GenerationEvent> {
    let firstTokenAt: number | undefined;
    let completionTokens = 0;
    let reason: GenerationSummary['finishReason'] = 'abort';
    let errorCode: string | undefined;
    let error: NucleusError | undefined;
    try {
      for await (const event of this.channel) {
        // A buffered request's events come at its end: its first token is when the channel received it.
        if (event.type === 'token' && firstTokenAt === undefined)
          firstTokenAt = this.channel.firstTokenAt ?? performance.now();
        if (event.type === 'finish')
          reason = event.finishReason === 'cancelled' ? 'abort' : event.finishReason === 'length' ? 'length' : 'stop';
        if (event.type === 'done') completionTokens = event.usage.completionTokens;
        yield event;
      }
    } catch (err) {
      reason = 'error';
      error = toNucleusError(err);
      errorCode = error.code;
      // A 503 from the thread (out of memory, a worker that died) is worth retrying: say when.
      if (error.status === 503) error.headers['retry-after'] ??= '1';
      throw error;
    } finally {
      this.onEnd({
        completionTokens,
        ...(firstTokenAt !== undefined && { firstTokenAt }),
        endedAt: performance.now(),
        finishReason: reason,
        ...(errorCode !== undefined && { errorCode }),
        ...(error !== undefined && { error }),
      });
    }
  }
}
