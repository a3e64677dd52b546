import {
  NucleusError,
  notFound,
  toNucleusError,
  unavailable,
  type GenerationModelInfo,
  type Logger,
} from '@nucleus/sdk';
import { defaultModelCacheDir } from '../../model-cache-dir.js';
import type { GenerationAdmission } from './generation-admission.js';
import type { GenerationEngineOptions } from './generation-engine-options.js';
import { drain, LifecycleQueue } from './generation-lifecycle.js';
import type { GenerationReplicas } from './generation-replicas.js';
import { ModelSources } from './model-sources.js';
import { ReplicaLauncher } from './replica-launcher.js';
import { ReplicaTelemetry } from './replica-telemetry.js';
import {
  backendKey,
  modelKey,
  type ConfiguredLlm,
  type LlmModelSpec,
  type ModelDraft,
  type ServedModel,
} from './served-model.js';

/**
 * The models the generation engine serves, by name, and their lifecycle: configured LLMs and the built-ins plugins
 * contribute are registered at start; models are loaded, swapped (opened beside, warmed up, switched at once, the old
 * version drained) and unloaded at run time, one operation at a time per name. Replicas open on first use.
 */
export class ModelCatalog {
  readonly #models = new Map<string, ServedModel>();
  readonly #log: Logger;
  readonly #sources: ModelSources;
  readonly #launcher: ReplicaLauncher;
  /** Run-time loads, swaps and unloads, one at a time per model name. */
  readonly #lifecycle = new LifecycleQueue();
  /** Replicas of swapped-out and unloaded models still finishing their generations; `stop` closes them too. */
  readonly #draining = new Set<GenerationReplicas>();
  #unwatch: (() => void) | undefined;
  #stopped = false;
  #persistTimer: NodeJS.Timeout | undefined;
  #persisting: Promise<void> | undefined;

  /** `admission` gives each model its breaker. */
  constructor(
    private readonly options: GenerationEngineOptions,
    logger: Logger,
    private readonly admission: GenerationAdmission,
  ) {
    this.#log = logger;
    this.#sources = new ModelSources({
      formats: options.formats,
      ...(options.transforms && { transforms: options.transforms }),
      cacheDir: options.cacheDir ?? defaultModelCacheDir(),
      logger,
    });
    this.#launcher = new ReplicaLauncher(
      options,
      logger,
      () => this.#models.values(),
      () => this.#stopped,
    );
  }

  /**
   * Registers the models: configured LLMs are opened now (a failure marks that model failed and the rest go on);
   * built-ins too when `startup.warmUp` is on, otherwise on their first request.
   */
  async start(): Promise<void> {
    this.#stopped = false;
    const configured: readonly ConfiguredLlm[] = this.options.config.get('models');
    const llmNames = this.options.llmModels?.() ?? (await this.#llmsAmong(configured));
    const llms = configured.filter((m) => llmNames.has(m.name));
    for (const m of llms) this.#add(this.#sources.configured(m));
    if ((this.options.builtinModels ?? true) && configured.length === 0) {
      for (const { value: builtin } of this.options.builtins?.list() ?? []) {
        if (builtin.kind === 'llm') this.#add(this.#sources.builtinLlm(builtin));
        else if (builtin.kind === 'embedding') this.#add(this.#sources.builtinEmbedding(builtin));
      }
    }
    this.#unwatch = this.#launcher.watch();
    this.#persistEvery(this.options.config.get('cache.prefix.persistIntervalMs'));
    const opened = this.options.config.get('startup.warmUp')
      ? [...this.#models.values()]
      : llms.map((m) => this.#models.get(m.name)!);
    await Promise.all(opened.map((m) => this.replicasOf(m).catch(() => undefined)));
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
    this.#unwatch?.();
    clearInterval(this.#persistTimer);
    // A graceful stop keeps what the prefix caches learnt for the next start (`cache.prefix.persist`).
    await this.persistPrefixCaches('shutdown');
    const pools = [
      ...[...this.#models.values()].map((m) => m.replicas).filter((p) => p !== undefined),
      ...this.#draining,
    ];
    for (const name of this.#models.keys()) {
      this.options.health?.clear(`breaker:${name}`);
      this.options.health?.clear(backendKey(name));
      this.options.health?.clear(modelKey(name));
    }
    this.#models.clear();
    await Promise.all(pools.map((p) => p.close()));
  }

  /**
   * Writes the prefix cache of every replica of the models served to its file, when `cache.prefix.persist` is on;
   * failures are logged, never thrown. A call while a write runs waits for that one.
   */
  persistPrefixCaches(why: 'shutdown' | 'interval'): Promise<void> {
    if (!this.options.config.get('cache.prefix.persist')) return Promise.resolve();
    this.#persisting ??= this.#persistAll(why).finally(() => (this.#persisting = undefined));
    return this.#persisting;
  }

  async #persistAll(why: 'shutdown' | 'interval'): Promise<void> {
    const started = Date.now();
    const workers = [...this.#models.values()].flatMap((m) => (m.replicas?.all ?? []).map((w) => ({ m, w })));
    await Promise.all(
      workers.map(async ({ m, w }) => {
        const result = await w.persistPrefixCache();
        if ('error' in result) {
          if (w.spec.prefixCache?.persist && w.serving)
            this.#log.warn({ model: m.name, replica: w.id, err: result.error }, 'prefix cache not written');
          return;
        }
        this.#log.info(
          { model: m.name, replica: w.id, ...result, why, durationMs: Date.now() - started },
          'prefix cache written',
        );
      }),
    );
  }

  // Writes the prefix caches every `ms` while serving (0: only at shutdown).
  #persistEvery(ms: number): void {
    clearInterval(this.#persistTimer);
    if (ms <= 0 || !this.options.config.get('cache.prefix.persist')) return;
    this.#persistTimer = setInterval(() => void this.persistPrefixCaches('interval'), ms);
    this.#persistTimer.unref();
  }

  /** The model served under `name`, if any. */
  served(name: string): ServedModel | undefined {
    return this.#models.get(name);
  }

  /** The models served now. */
  all(): ServedModel[] {
    return [...this.#models.values()];
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
      return this.info(model);
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
      const old = this.find(name);
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
      return this.info(model);
    });
  }

  /**
   * Stops serving a model: new requests get 404 at once, generations already running finish (up to
   * `drainTimeoutMs`, after which they end with a 503 `model_unloading` error), then its workers close.
   */
  unload(name: string, options: { drainTimeoutMs?: number } = {}): Promise<void> {
    return this.#lifecycle.run(name, async () => {
      const model = this.find(name);
      model.retired = true;
      this.#models.delete(name);
      this.options.health?.clear(`breaker:${name}`);
      this.options.health?.clear(backendKey(name));
      this.options.health?.clear(modelKey(name));
      await this.#retire(model, options.drainTimeoutMs);
    });
  }

  // Opens a model from a spec beside whatever serves under its name, and warms up each replica.
  async #openBeside(spec: LlmModelSpec, version: string, replacing?: ServedModel): Promise<ServedModel> {
    const { name } = spec;
    // In place: its `prepare` writes to the object `#configuredModel` made.
    const model = this.#complete(
      Object.assign(this.#sources.configured(spec), { origin: 'runtime' as const, version, spec }),
    );
    try {
      // Opening warms the model up (`warmup`), so a model that cannot generate fails here, beside the old one.
      await this.replicasOf(model);
      return model;
    } catch (err) {
      await model.replicas?.close();
      model.replicas = undefined;
      // A failed open has been reported (`model.failed`) and kept its reason.
      const reason = model.reason ?? toNucleusError(err).message;
      const kept = replacing ? `; version ${replacing.version} keeps serving` : '';
      // 422: the request was well formed, the files it names cannot be served.
      throw new NucleusError(
        422,
        'model_load_failed',
        `model '${name}' could not be loaded from ${spec.path}: ${reason}${kept}`,
        { param: 'source' },
      );
    }
  }

  // Lets a swapped-out or unloaded model finish what it runs, then closes its workers.
  async #retire(model: ServedModel, drainTimeoutMs = this.options.config.get('plugins.drainTimeoutMs')): Promise<void> {
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

  /** The model served under `name`; 404 `model_not_found` naming those served. */
  find(name: string): ServedModel {
    const model = this.#models.get(name);
    if (!model) {
      const known = [...this.#models.keys()].join(', ') || 'none';
      throw notFound('model_not_found', `The model '${name}' does not exist (served here: ${known})`);
    }
    return model;
  }

  #add(model: ModelDraft): void {
    this.#models.set(model.name, this.#complete(model));
  }

  // A model with its breaker and telemetry, not yet served under its name.
  #complete(draft: ModelDraft): ServedModel {
    const name = draft.name;
    const model = draft as ServedModel;
    // In place: a configured model's `prepare` writes to this very object.
    Object.assign(model, {
      breaker: this.admission.breaker(name),
      telemetry: new ReplicaTelemetry(
        name,
        this.options.events,
        () => model.replicas,
        () => this.options.config.get('models').find((m) => m.name === name)?.speculative ?? 'unknown',
      ),
    });
    return model;
  }

  /** The model that serves what was admitted for `model`: itself, or once it is retired the one that replaced it. */
  serving(model: ServedModel): ServedModel {
    if (!model.retired) return model;
    const next = this.#models.get(model.name);
    if (next) return next;
    throw notFound('model_not_found', `The model '${model.name}' was unloaded`);
  }

  /** A model's replicas, opened on first use (and again after a failed open). */
  replicasOf(model: ServedModel): Promise<GenerationReplicas> {
    if (this.#stopped) return Promise.reject(unavailable('server_stopping', 'the server is shutting down'));
    // A retired model is never opened again: its replicas only finish what they hold.
    if (model.retired && !model.replicas)
      return Promise.reject(unavailable('model_unloading', `model '${model.name}' was unloaded`));
    if (model.replicas && model.state === 'ready') return Promise.resolve(model.replicas);
    model.starting ??= this.#launcher.open(model).finally(() => (model.starting = undefined));
    return model.starting;
  }

  /** A model as `list()` and `get()` show it. */
  info(m: ServedModel): GenerationModelInfo {
    return {
      name: m.name,
      kind: m.kind,
      origin: m.origin,
      version: m.version,
      ...(m.path !== undefined && { path: m.path }),
      state: m.state,
      ...(m.reason !== undefined && { reason: m.reason }),
      ...(m.errorCode !== undefined && { errorCode: m.errorCode }),
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
      ...(m.kind === 'llm' && { breaker: m.breaker.status(), stepRecovery: m.telemetry.recoveryTotals() }),
      ...(m.replicas?.workers[0] && { worker: m.replicas.workers[0].status() }),
      ...(m.replicas && { workers: m.replicas.replicas() }),
    };
  }
}
