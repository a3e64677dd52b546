import {
  badRequest,
  notFound,
  unavailable,
  type EmbedRequest,
  type EmbedResult,
  type GenerateRequest,
  type GenerationModelInfo,
  type GenerationService,
  type GenerationStream,
} from '@nucleus/sdk';
import { GenerationAdmission } from './generation-admission.js';
import type { GenerationEngineOptions } from './generation-engine-options.js';
import { ModelCatalog } from './model-catalog.js';
import { qualifiedConversation, toWireEmbed } from './request-schema.js';
import type { LlmModelSpec } from './served-model.js';

export type { GenerationEngineOptions } from './generation-engine-options.js';

/**
 * The text-generation engine: one worker thread per model replica runs the continuous-batching loop (or the
 * embedding runs); this main-thread side validates requests against their schema, admits them, relays token groups
 * and cancels. It composes the {@link ModelCatalog} (the served models and their lifecycle), the
 * {@link GenerationAdmission} (gate, breakers, fallback) and the request schema. It is the kernel's
 * {@link GenerationService}; API plugins reach it through `Services.generation`.
 */
export class GenerationEngine implements GenerationService {
  readonly #admission: GenerationAdmission;
  readonly #catalog: ModelCatalog;

  constructor(options: GenerationEngineOptions) {
    const logger = options.logger.child({ component: 'generation' });
    this.#admission = new GenerationAdmission({
      config: options.config,
      events: options.events,
      logger,
      ...(options.health && { health: options.health }),
      ...(options.strategies && { strategies: options.strategies }),
    });
    this.#catalog = new ModelCatalog(options, logger, this.#admission);
  }

  /** Generations holding a running slot, and those waiting for one. */
  get admission(): { running: number; waiting: number; shedding: boolean } {
    return this.#admission.status;
  }

  /**
   * Registers the models: configured LLMs are opened now (a failure marks that model failed and the rest go on);
   * built-ins start on their first request, so a server that never generates never pays for them.
   */
  start(): Promise<void> {
    return this.#catalog.start();
  }

  /** Stops every worker; requests still running end with 503 `model_unloading`. */
  async stop(): Promise<void> {
    this.#admission.rejectAll(unavailable('server_stopping', 'the server is shutting down'));
    await this.#catalog.stop();
  }

  list(): GenerationModelInfo[] {
    return this.#catalog.defaults().map((m) => this.#catalog.info(m));
  }

  listVersions(): GenerationModelInfo[] {
    return this.#catalog.all().map((m) => this.#catalog.info(m));
  }

  /** The version a request naming none goes to (`get(name).version`), or undefined for a name not served. */
  defaultVersion(name: string): string | undefined {
    return this.#catalog.served(name)?.version;
  }

  get(name: string, version?: string): GenerationModelInfo {
    return this.#catalog.info(this.#catalog.find(name, version));
  }

  async generate(request: GenerateRequest, signal?: AbortSignal): Promise<GenerationStream> {
    const [stream] = await this.#admit([request], signal);
    return stream!;
  }

  async generateBatch(requests: readonly GenerateRequest[], signal?: AbortSignal): Promise<GenerationStream[]> {
    if (!Array.isArray(requests) || requests.length === 0)
      throw badRequest('missing_prompt', 'the request needs at least one prompt', 'prompt');
    const { model, version } = requests[0]!;
    if (requests.some((r) => r.model !== model || r.version !== version))
      throw badRequest('invalid_model', 'the generations of one request must all use one model', 'model');
    const capacity = this.#admission.capacity;
    if (requests.length > capacity) {
      throw badRequest(
        'too_many_prompts',
        `the request has ${requests.length} prompts, but at most ${capacity} generations run at once (scheduler.maxRunning); send at most ${capacity} prompts per request`,
        'prompt',
      );
    }
    return this.#admit(requests, signal);
  }

  #admit(requests: readonly GenerateRequest[], signal?: AbortSignal): Promise<GenerationStream[]> {
    const { model, version } = requests[0]!;
    return this.#admission.admit(this.#catalog.find(model, version), requests, signal, this.#catalog);
  }

  async embed(request: EmbedRequest, signal?: AbortSignal): Promise<EmbedResult> {
    const model = this.#catalog.find(request.model, request.version);
    const wire = toWireEmbed(request);
    const replicas = await this.#catalog.replicasOf(this.#catalog.serving(model));
    const { vectors, promptTokens } = await replicas.embed(wire, signal);
    return { model: model.name, embeddings: vectors, promptTokens };
  }

  async releaseConversation(conversationId: string, model?: string, tenant?: string): Promise<number | undefined> {
    if (typeof conversationId !== 'string' || conversationId.length === 0)
      throw badRequest('invalid_conversation_id', 'conversation_id must be a non-empty string', 'conversation_id');
    const models = model === undefined ? this.#catalog.all() : this.#catalog.versionsOf(this.#catalog.find(model).name);
    const id = qualifiedConversation(conversationId, tenant);
    const freed = await Promise.all(
      models.map((m) => m.replicas?.releaseConversation(id) ?? { bytes: 0, found: false }),
    );
    return freed.some((r) => r.found) ? freed.reduce((a, b) => a + b.bytes, 0) : undefined;
  }

  /**
   * Ends one of a model's workers (the replica with index `replica`, default the first taking requests) the way a
   * crash would, for tests and operators: it restarts, and what it held without a token runs on the other replicas.
   */
  async killWorker(name: string, replica?: number): Promise<void> {
    const workers = this.#catalog.find(name).replicas?.workers ?? [];
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
   * and warmed up; a spec naming a new `version` of a served name is served beside its versions. 409 when the name
   * (or name and version) is taken; 422 saying why when it cannot be loaded.
   */
  load(spec: LlmModelSpec): Promise<GenerationModelInfo> {
    return this.#catalog.load(spec);
  }

  /**
   * Replaces a served model with the one `spec` names: its replicas open beside the old ones and are warmed up with a
   * one-token generation; then new requests (and those waiting for a slot) go to it from one instant on, while the
   * generations already running finish on the old replicas (up to `drainTimeoutMs`), which then close. With
   * `replaces`, only that version is swapped and the name's other versions serve on. A load or warm-up that fails
   * leaves the old model serving and throws 422 saying why.
   */
  swap(
    name: string,
    spec: Omit<LlmModelSpec, 'name'>,
    options: { drainTimeoutMs?: number; replaces?: string } = {},
  ): Promise<GenerationModelInfo> {
    return this.#catalog.swap(name, spec, options);
  }

  /**
   * Stops serving a model (or only its `version`): new requests get 404 at once, generations already running finish
   * (up to `drainTimeoutMs`, after which they end with a 503 `model_unloading` error), then its workers close.
   */
  unload(name: string, options: { drainTimeoutMs?: number; version?: string } = {}): Promise<void> {
    return this.#catalog.unload(name, options);
  }
}
