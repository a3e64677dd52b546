import type { Middleware, ParameterizedContext } from 'koa';
import type { EventBus } from './events.js';
import type { EmbeddingPooling } from './generation.js';
import type { NucleusError } from './errors.js';
import type { LoadedLlm } from './llm/decoder-model.js';
import type { Logger } from './logger.js';
import type { OnnxModel } from './onnx/onnx-model.js';
import type { Progress } from './progress.js';
import type { RouteDoc } from './route-catalog.js';

/** The Koa context a route handler receives. */
export type RouteContext = ParameterizedContext<Record<string, unknown>, { params: Record<string, string> }>;

/** An HTTP route a plugin adds to the server. Paths use `:param` segments. */
export interface RouteContribution {
  method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  path: string;
  handler: (ctx: RouteContext) => unknown | Promise<unknown>;
  /** Who may call it; `public` needs no key even when keys are configured. Default `user`. */
  access?: 'public' | 'user' | 'admin';
  /**
   * An admin route that only reads, whatever its method (KServe's `POST /v2/repository/index`): still answered when
   * `server.processes` > 1, where admin routes that change a process's state are refused.
   */
  readOnly?: boolean;
  /** What the API document (`/openapi.json`) says of it: summary, body schema, query, answers. */
  doc?: RouteDoc;
}

/**
 * The error body of every answer under a path prefix, for an API whose clients read errors in a shape of their own:
 * core's error handler uses it for every error there (a refused key, an unknown route, a failed check, an overload),
 * with the error's status and headers as ever. The longest matching prefix wins; elsewhere the body is
 * `NucleusError.toBody()`.
 */
export interface ErrorBodyFormat {
  /** The path prefix it answers for (`/api/`). */
  prefix: string;
  /** The response body for an error. */
  body(error: NucleusError): unknown;
}

/** Middleware a plugin inserts around every request, named for the moment it runs. */
export interface Hooks {
  /**
   * Runs for a request to a known route once its key is checked (`callerOf(ctx)`), before its body is read: a
   * request refused here (a rate limit) costs the server no body read or parse.
   */
  preParsing?: Middleware;
  /** Runs for every request once its body is parsed, before routing. */
  onRequest?: Middleware;
  /**
   * Transforms an inference input before the routers and the model see it, on every API plugin's inference routes
   * (they run it through `InferenceHooks`); return a new body rather than changing the one given.
   */
  preInference?(input: InferenceHookInput): Promise<InferenceHookInput> | InferenceHookInput;
  /** Transforms a complete inference response before it is sent; a streamed (SSE) answer does not come here. */
  postInference?(output: InferenceHookOutput): Promise<InferenceHookOutput> | InferenceHookOutput;
  /**
   * Wraps the run of an inference request, after `preInference` and the routers and before `postInference`: `next()`
   * runs the route (or the next wrapper) and gives its response body, or undefined when the route streamed its answer
   * itself. A wrapper may answer without calling `next` (a cache does); wrappers nest in priority order, the first
   * outermost.
   */
  aroundInference?(call: InferenceCall, next: () => Promise<InferenceAnswer>): Promise<InferenceAnswer>;
}

/** A route's complete response body, or undefined when it streamed its answer itself (SSE). */
export type InferenceAnswer = Record<string, unknown> | undefined;

/** What `aroundInference` sees: the hooked and routed request, where it came in, and a way to add response headers. */
export interface InferenceCall extends InferenceHookInput {
  /** The request's path (`/v2/models/m/infer`, `/v1/chat/completions` …): which API's body `body` is. */
  readonly path: string;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  /** Sets a header of the response. */
  setHeader(name: string, value: string): void;
}

/** What `preInference` sees: the model addressed and its request body. */
export interface InferenceHookInput {
  model: string;
  version?: string;
  body: Record<string, unknown>;
}

/** What `postInference` sees: the model addressed and the response body. */
export interface InferenceHookOutput {
  model: string;
  version?: string;
  body: Record<string, unknown>;
}

/** Something that ships telemetry out; it only subscribes to the event bus. */
export interface Exporter {
  readonly name: string;
  start?(events: EventBus): void | Promise<void>;
  /** Sends what is buffered; called on shutdown. */
  flush?(): Promise<void>;
  stop?(): void | Promise<void>;
}

/** A request waiting to be scheduled, as a strategy sees it. */
export interface Schedulable {
  readonly id: string;
  readonly priority: 'high' | 'normal' | 'low';
  /** Milliseconds since the epoch when it was admitted. */
  readonly enqueuedAt: number;
  /** Estimated cost (tokens or batch items). */
  readonly cost: number;
}

/** The load of one inference worker, as a routing strategy sees it. */
export interface WorkerLoad {
  readonly id: string;
  readonly healthy: boolean;
  /** Batches it is running now; for a generation worker, the sequences running and waiting in it. */
  readonly activeBatches: number;
  /** Requests it has accepted and not yet answered. */
  readonly inflight: number;
  /** Device or host memory it may still allocate, when known. */
  readonly freeMemoryBytes?: number;
}

/**
 * Queue order, apart from the mechanism that admits requests: which waiting request goes first. The engines use the
 * strategy `scheduler.strategy` names.
 */
export interface SchedulerStrategy {
  readonly name: string;
  /** Indices into `waiting`, in the order they should be taken. */
  order(waiting: readonly Schedulable[], now: number): number[];
}

/**
 * Replica routing: which of a model's workers takes a request. The tensor engine uses the router `workers.routing`
 * names, the generation engine the one `workers.llmRouting` names; without one, the least busy replica.
 */
export interface ReplicaRouter {
  readonly name: string;
  /**
   * Index into `workers` of the one to send a request of `estimatedBytes` to, or -1 when none fits. A generation
   * request also carries `affinityKey` (its conversation id, or a digest of how its prompt begins): requests with
   * one key share prefix-cache entries, so a router may keep them on one worker.
   */
  pickWorker(workers: readonly WorkerLoad[], request: { estimatedBytes: number; affinityKey?: string }): number;
}

/** What a bounded cache evicts: one instance per cache, told of every insert, use and removal. */
export interface CachePolicy {
  onInsert(key: string, bytes: number): void;
  onAccess(key: string): void;
  onRemove(key: string): void;
  /** The next key to evict, or undefined when nothing may be evicted. */
  victim(): string | undefined;
}

/**
 * A cache eviction policy as a plugin contributes it (`cachePolicy` point): a name and the module that makes
 * instances, not an instance. Caches that live in worker threads (the LLM prefix cache) decide evictions inside a
 * step and cannot call a main-thread object, so each imports {@link CachePolicySpec.module} and calls its default
 * export (a {@link CachePolicyFactory}) with {@link CachePolicySpec.options} for an instance of its own; a cache on
 * the main thread does the same through `loadCachePolicy`.
 */
export interface CachePolicySpec {
  /** The policy's name, as `cache.prefix.policy` gives it (`lru` …). */
  readonly name: string;
  /** URL of an ES module whose default export is a {@link CachePolicyFactory}. */
  readonly module: string;
  /** Plain data (it crosses into the worker) handed to the factory. */
  readonly options?: Readonly<Record<string, unknown>>;
}

/** Makes a fresh, empty policy (one per cache) from {@link CachePolicySpec.options}; the default export of its module. */
export type CachePolicyFactory = (options?: Readonly<Record<string, unknown>>) => CachePolicy;

/**
 * A way to guess the next tokens of a sequence cheaply (speculative decoding): the generation loop runs the model once
 * over the last token and the guesses, keeps the longest prefix the model agrees with and the model's own next token
 * after it, so one step may give several tokens while the output stays what the model alone gives (exactly under
 * greedy sampling, in distribution under sampling). A model names its method with `models[].speculative`.
 *
 * The loop lives in the model's worker, where a main-thread object cannot be called once per step: the worker imports
 * {@link DraftProposerSpec.module} and calls its default export (a {@link DraftProposerFactory}) with
 * {@link DraftProposerSpec.options} for a proposer of its own.
 */
export interface DraftProposerSpec {
  /** The method's name, as `models[].speculative` gives it (`ngram`, `draft` …). */
  readonly name: string;
  /** URL of an ES module whose default export is a {@link DraftProposerFactory}. */
  readonly module: string;
  /** Plain data (it crosses into the worker) handed to the factory. */
  readonly options?: Readonly<Record<string, unknown>>;
  /** Most draft tokens verified per step (k). */
  readonly numSpeculativeTokens: number;
  /** Speculate only while at most this many sequences run: on a full batch verifying costs more than it saves. */
  readonly maxBatch: number;
  /** The method runs a draft model, which the model's config names (`models[].speculation.draft`). */
  readonly needsDraftModel?: boolean;
  /** Per-request auto-off; absent: speculation is never paused. */
  readonly autoOff?: SpeculationAutoOff;
}

/**
 * When a request stops speculating (seed 004 R12.5): once `window` draft tokens were verified and fewer than
 * `minAcceptance` of them were accepted, the request decodes plainly for `coolDownSteps` steps, then drafts again.
 */
export interface SpeculationAutoOff {
  /** Accepted over drafted tokens below which drafting pauses (0 to 1). */
  readonly minAcceptance: number;
  /** Draft tokens the running rate is measured over (the latest ones). */
  readonly window: number;
  /** Plain decode steps before the request drafts again. */
  readonly coolDownSteps: number;
  /**
   * A pause carries over to the requests that arrive after it (per server, off where drafting no longer pays): right
   * for a draft model, whose agreement is the pair's; not for prompt lookup, whose acceptance is each request's text.
   */
  readonly acrossRequests?: boolean;
}

/** What the loop tells a proposer about the sequence it drafts for. */
export interface DraftRequest {
  /** The sequence's id in the loop: a proposer that keeps state per sequence (a draft model's cache) keys it by this. */
  readonly sequence: number;
  /** The request samples greedily: draft the most likely tokens. */
  readonly greedy: boolean;
  /** The request's sampling temperature (> 0 unless greedy). */
  readonly temperature: number;
  /** A uniform draw in [0, 1) from the sequence's own seeded generator, so seeded requests stay reproducible. */
  random(): number;
}

/**
 * Drafts with the probability the proposer gave each (q of rejection sampling, over the whole vocabulary, summing to
 * 1), for drafts that were sampled; without them each draft counts as a certain guess (q one-hot).
 */
export interface DraftProposal {
  readonly tokens: readonly number[];
  readonly probabilities?: readonly Float32Array[];
}

/** Proposes draft tokens for one sequence at a time, inside the generation worker. */
export interface DraftProposer {
  /**
   * Up to `max` tokens likely to follow `tokens` (the sequence so far: prompt, then output). Fewer or none when it has
   * no guess; a wrong guess costs a little compute and never changes the output. A proposer that runs a model of its
   * own (a draft model) answers with a promise.
   */
  propose(
    tokens: readonly number[],
    max: number,
    request?: DraftRequest,
  ): readonly number[] | DraftProposal | Promise<readonly number[] | DraftProposal>;
  /** The loop is done with this sequence: drop what was kept for it. */
  release?(sequence: number): void;
}

/**
 * A draft model the generation worker opened for a proposer: a decoder with the served model's vocabulary, run with
 * the same runner code as the model itself, one KV cache per sequence.
 */
export interface DraftModel {
  readonly vocabSize: number;
  /**
   * Brings the sequence's cache to `tokens` (keeping the longest prefix it already holds, computing the rest) and gives
   * the logits of the token after them.
   */
  next(sequence: number, tokens: readonly number[]): Promise<Float32Array>;
  /** Drops a sequence's cache. */
  release(sequence: number): void;
}

/** What the worker gives a {@link DraftProposerFactory} besides the method's options. */
export interface DraftProposerContext {
  /** Set for a method with {@link DraftProposerSpec.needsDraftModel}. */
  readonly draftModel?: DraftModel;
}

/** Makes a proposer from {@link DraftProposerSpec.options}; the default export of {@link DraftProposerSpec.module}. */
export type DraftProposerFactory = (
  options: Readonly<Record<string, unknown>>,
  context?: DraftProposerContext,
) => DraftProposer;

/** A model source as formats see it. */
export interface ModelSource {
  /** As the user gave it (a config entry's `path`, an admin request's `source`). */
  readonly source: string;
  /** The absolute path it names on disk. */
  readonly path: string;
  readonly type: 'file' | 'directory';
}

/** A format's answer to "can you load this?". */
export interface FormatMatch {
  /** 0 to 1: how sure the format is that it loads the source; 0 says "not mine", with `reason` saying why. */
  readonly confidence: number;
  /** One line a user can read: what the format recognised, or why it will not load the source. */
  readonly reason: string;
  /** Which engine serves what it loads: `llm` (generation) or `tensor`. */
  readonly kind: 'llm' | 'tensor';
  /**
   * True when the format builds the ONNX graph itself (from weights), so it can build the graph style the backend
   * runs best; false when it serves the graph the source ships.
   */
  readonly buildsGraph?: boolean;
}

/** What a format is given to load a source. */
export interface FormatLoadContext {
  /** The name the model is served under. */
  readonly name: string;
  /** Where generated graphs and other derived files are cached. */
  readonly cacheDir: string;
  /** Graph style to build when the format builds its graph (see {@link FormatMatch.buildsGraph}). */
  readonly graphStyle: 'generic' | 'contrib';
  /** Cap on prompt + completion tokens; the model's own limit applies when lower. */
  readonly maxContext?: number;
  /**
   * Build only the model's first this many layers, then its final norm and head (an early-exit graph, the draft of
   * self-speculation); formats that build graphs from weights honour it, the engine refuses a load that ignored it.
   */
  readonly layers?: number;
  /** Format-specific settings from the model's config entry (`models[].tokenizer` …). */
  readonly options: Readonly<Record<string, unknown>>;
  readonly logger: Logger;
  /** A new {@link Progress} for each long step of the load (hashing the file, building the graph …). */
  readonly progress: () => Progress;
}

/**
 * A model format (GGUF, an ONNX export folder, a checkpoint layout …): recognises a source and turns it into what an
 * engine runs. Formats are plugins; when several claim a source, the most confident one loads it.
 */
export interface ModelFormat {
  readonly name: string;
  /** One line: the sources it loads, listed when no format accepts a source. */
  readonly accepts: string;
  /** Whether and how surely it loads `source`; undefined (or confidence 0) when it does not. */
  detect(source: ModelSource): FormatMatch | undefined | Promise<FormatMatch | undefined>;
  /** Loads a source it matched with kind `llm` into a decoder the generation engine opens. */
  loadLlm?(source: ModelSource, context: FormatLoadContext): Promise<LoadedLlm>;
}

/**
 * A model served when no model is configured: the demo models a fresh install answers with. Its files are written
 * into the model cache on first use (or shipped with the plugin), then loaded like any configured source.
 */
export interface BuiltinModel {
  readonly name: string;
  /** `llm` and `embedding` models are served by the generation engine, `tensor` models by the tensor engine. */
  readonly kind: 'llm' | 'embedding' | 'tensor';
  /** One line for listings: what it is and whether its weights mean anything. */
  readonly description: string;
  /** Known before the model is opened (listings show it): longest prompt plus completion, in tokens. */
  readonly maxContext?: number;
  /** Width of its hidden states (an embedding's dimensions). */
  readonly dimensions?: number;
  /** A chat template that replaces the model's own (a story model has none worth using). */
  readonly chatTemplate?: string;
  /**
   * For `embedding`: the facts of an encoder graph that has no tokenizer of its own (bytes are its tokens);
   * the embedding thread reads them instead of asking a format.
   */
  readonly encoder?: { hiddenSize: number; maxPositions: number; vocabSize: number; pooling: EmbeddingPooling };
  /**
   * Makes sure the model's files are in `cacheDir` (writing what is missing or stale) and returns its source: a
   * file or folder the active formats load (`llm`), a version folder holding model.onnx (`tensor`), or the encoder
   * graph's model.onnx (`embedding`).
   */
  prepare(cacheDir: string): Promise<string>;
}

/** What a {@link ModelRouter} is asked: the model a request addresses, its headers and its (checked) body. */
export interface RouteRequest {
  model: string;
  /** The version the request names itself (a KServe `/versions/:v` path, a native `version` field). */
  version?: string;
  headers: Record<string, string | string[] | undefined>;
  /** The request body after the `preInference` hooks (an OpenAI request's `user` field, …); read only. */
  body?: Readonly<Record<string, unknown>>;
}

/** Where a router sends a request: a model (another name for a variant served under its own) and version. */
export interface RouteChoice {
  model: string;
  version?: string;
  /**
   * A copy of the request to run after the client has its answer; the copy's answer is never returned, only handed
   * to the router's `compareShadow`. Streamed requests are not copied.
   */
  shadow?: { model: string; version?: string };
}

/** How a request a router chose for went, as that router hears it. */
export interface RoutedOutcome {
  /** The model name the request addressed, before routing. */
  addressed: string;
  model: string;
  version?: string;
  /** The HTTP status it ended with: 5xx is the server's (the version's) failure, 4xx the client's. */
  status: number;
  /** From handing it to the route to its complete answer (a streamed answer's last token). */
  durationMs: number;
}

/** A shadow copy's answer beside the answer the client got. */
export interface ShadowOutcome {
  /** The model name the request addressed, before routing. */
  addressed: string;
  primary: { model: string; version?: string; body: Record<string, unknown> };
  /**
   * The copy's response body, or why it failed; `dropped`: it never ran, because too many copies were already running
   * (a slow shadow holds nothing up: copies beyond the bound are dropped, not queued).
   */
  shadow: {
    model: string;
    version?: string;
    body?: Record<string, unknown>;
    error?: string;
    dropped?: boolean;
    durationMs: number;
  };
}

/**
 * Chooses which model and version serve a request (A/B, canary, shadow, aliases). Every API plugin's inference
 * routes consult the routers through `InferenceHooks`; a router that chose is told how the request went.
 */
export interface ModelRouter {
  readonly name: string;
  /** The model and version to use, or undefined to leave the choice to the next router. */
  route(request: RouteRequest): RouteChoice | undefined;
  /** Told how each request it routed went (ok or not, and how long it took). */
  observe?(outcome: RoutedOutcome): void;
  /** Told the answer of each shadow copy it asked for, beside the answer the client got. */
  compareShadow?(outcome: ShadowOutcome): void;
  /** Its live state for `GET /status` (splits, counts per version, canary step, shadow agreement); undefined when idle. */
  status?(): Record<string, unknown> | undefined;
}

/** What a {@link ModelTransform} is told about the model it rewrites. */
export interface ModelTransformContext {
  /** The name the model is served under. */
  readonly model: string;
  /** `tensor` for models the tensor engine serves, `llm` for decoder graphs (built from GGUF, llama2.c, or an export folder). */
  readonly kind: 'tensor' | 'llm';
  /** Where the graph was read from. */
  readonly path: string;
  /** Report how far the rewrite has got; a transform that runs for seconds on a large model should. */
  readonly progress?: Progress;
  /**
   * The model's own settings when `models[].quantize` is an object (`{ method: static, calibration: … }`), less
   * `method` (paths in it are relative to the working directory, as `models[].path` is).
   */
  readonly options?: Readonly<Record<string, unknown>>;
}

/** What a transform reports about one rewrite, for the load log and the model's metadata. */
export interface ModelTransformResult {
  model: OnnxModel;
  /** One line a user can read: what changed (`12 MatMul weights → int8, 3.9× smaller`). */
  summary: string;
}

/**
 * A rewrite of an ONNX graph applied when a model is loaded (`models[].quantize` names one): quantization, fusion,
 * pruning. It runs once per model and its output is cached, so it may be slow; it must keep the graph's inputs and
 * outputs as they are.
 */
export interface ModelTransform {
  readonly name: string;
  /** One line saying what it does, listed when a config names a transform that does not exist. */
  readonly description?: string;
  /**
   * Changes whenever the same input would be rewritten differently (the plugin's options, its algorithm), so a cached
   * result made under other settings is not reused.
   */
  readonly fingerprint: string;
  /**
   * What, besides `fingerprint`, makes a rewrite with these per-model options differ (e.g. the hash of a calibration
   * file); without it the options' JSON is used. Throws a `NucleusError` for options it cannot take.
   */
  optionsFingerprint?(options: Readonly<Record<string, unknown>>): string | Promise<string>;
  /** Rewrites `model` (it may change it in place and return it). */
  transform(model: OnnxModel, context: ModelTransformContext): ModelTransformResult | Promise<ModelTransformResult>;
}
