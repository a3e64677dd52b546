import {
  badRequest,
  NucleusError,
  notFound,
  toNucleusError,
  unavailable,
  type GenerationModelInfo,
  type Logger,
} from '@nucleus/sdk';
import { LoadBackoff } from '../../load-backoff.js';
import { defaultModelCacheDir } from '../../model-cache-dir.js';
import { compareVersions } from '../../model-repository.js';
import type { GenerationAdmission } from './generation-admission.js';
import type { GenerationEngineOptions } from './generation-engine-options.js';
import { drain, LifecycleQueue } from './generation-lifecycle.js';
import type { GenerationReplicas } from './generation-replicas.js';
import { ModelSources } from './model-sources.js';
import { ReplicaLauncher } from './replica-launcher.js';
import { ReplicaTelemetry } from './replica-telemetry.js';
import {
  backendKey,
  breakerKey,
  modelKey,
  type ConfiguredLlm,
  type LlmModelSpec,
  type ModelDraft,
  type ServedModel,
} from './served-model.js';

/** What a swap replaces and how long the old version may drain. */
export interface CatalogSwapOptions {
  drainTimeoutMs?: number;
  /** Only this version is replaced (the others keep serving); without it every version of the name is. */
  replaces?: string;
}

/**
 * The models the generation engine serves, by name and version, and their lifecycle: configured LLMs and the
 * built-ins plugins contribute are registered at start; models are loaded, swapped (opened beside, warmed up,
 * switched at once, the old version drained) and unloaded at run time, one operation at a time per name. A name may
 * hold several versions side by side (config entries of one name, loads that name a new version); a request that
 * names no version goes to the name's default, the highest version, and routers choose among them. Replicas open on
 * first use.
 */
export class ModelCatalog {
  /** name → version → model. */
  readonly #models = new Map<string, Map<string, ServedModel>>();
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
      () => this.all(),
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
    for (const m of llms) this.#add(withVersion(this.#sources.configured(m), m.version));
    if ((this.options.builtinModels ?? true) && configured.length === 0) {
      for (const { value: builtin } of this.options.builtins?.list() ?? []) {
        if (builtin.kind === 'llm') this.#add(this.#sources.builtinLlm(builtin));
        else if (builtin.kind === 'embedding') this.#add(this.#sources.builtinEmbedding(builtin));
      }
    }
    this.#unwatch = this.#launcher.watch();
    this.#persistEvery(this.options.config.get('cache.prefix.persistIntervalMs'));
    const opened = this.options.config.get('startup.warmUp')
      ? this.all()
      : llms.map((m) => this.served(m.name, typeof m.version === 'string' ? m.version : '1')!);
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
      ...this.all()
        .map((m) => m.replicas)
        .filter((p) => p !== undefined),
      ...this.#draining,
    ];
    for (const m of this.all()) this.#clearHealth(m);
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
    const workers = this.all().flatMap((m) => (m.replicas?.all ?? []).map((w) => ({ m, w })));
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

  /** The model served under `name` at `version` (default: the name's default version), if any. */
  served(name: string, version?: string): ServedModel | undefined {
    const versions = this.#models.get(name);
    if (!versions) return undefined;
    if (version !== undefined) return versions.get(version);
    return [...versions.values()].sort((a, b) => compareVersions(b.version, a.version))[0];
  }

  /** Every version of every model served now. */
  all(): ServedModel[] {
    return [...this.#models.values()].flatMap((versions) => [...versions.values()]);
  }

  /** The default version of each name served now. */
  defaults(): ServedModel[] {
    return [...this.#models.keys()].map((name) => this.served(name)!);
  }

  /** The versions served under `name`, oldest label first. */
  versionsOf(name: string): ServedModel[] {
    return [...(this.#models.get(name)?.values() ?? [])].sort((a, b) => compareVersions(a.version, b.version));
  }

  /**
   * Opens an LLM while serving, from a spec shaped like a `models[]` entry, and serves it once its replicas are open
   * and warmed up. A spec that names a new `version` of a served name is served beside the versions there; 409 when
   * the name (without a version) or the name and version are taken; 422 saying why when it cannot be loaded.
   */
  load(spec: LlmModelSpec): Promise<GenerationModelInfo> {
    return this.#lifecycle.run(spec.name, async () => {
      const { name } = spec;
      const served = this.versionsOf(name);
      if (served.length > 0 && (spec.version === undefined || this.served(name, spec.version)))
        throw new NucleusError(
          409,
          'model_exists',
          spec.version === undefined
            ? `a model named '${name}' is already served (versions: ${labels(served)}); swap it (POST /admin/models/${name}/swap), unload it first, or load a new version beside it (version)`
            : `model '${name}' already has a version '${spec.version}'; swap it (POST /admin/models/${name}/versions/${spec.version}/swap) or name a new version`,
          { param: spec.version === undefined ? 'name' : 'version' },
        );
      const model = await this.#openBeside(spec, spec.version ?? '1');
      this.#put(model);
      this.#log.info({ model: name, version: model.version, path: spec.path }, 'generation model loaded at run time');
      return this.info(model);
    });
  }

  /**
   * Replaces a served model with the one `spec` names: its replicas open beside the old ones and are warmed up with a
   * one-token generation; then new requests (and those waiting for a slot) go to it from one instant on, while the
   * generations already running finish on the old replicas (up to `drainTimeoutMs`), which then close. With
   * `replaces`, only that version is replaced (the new one keeps its label unless `spec.version` names another) and
   * the name's other versions serve on; otherwise every version is. A load or warm-up that fails leaves the old
   * versions serving and throws 422 saying why.
   */
  swap(name: string, spec: Omit<LlmModelSpec, 'name'>, options: CatalogSwapOptions = {}): Promise<GenerationModelInfo> {
    return this.#lifecycle.run(name, async () => {
      const old = options.replaces === undefined ? this.versionsOf(name) : [this.find(name, options.replaces)];
      if (old.length === 0) this.find(name);
      const top = this.versionsOf(name).at(-1)!;
      const version = spec.version ?? options.replaces ?? String(Number(top.version) + 1 || 2);
      const taken = this.served(name, version);
      if (taken && !old.includes(taken))
        throw badRequest(
          'version_exists',
          `model '${name}' already has a version '${version}'; name a new one or leave version out`,
          'version',
        );
      const model = await this.#openBeside({ ...spec, name }, version, old);
      for (const m of old) {
        m.retired = true;
        this.#remove(m);
      }
      this.#put(model);
      // The old breakers' state belonged to the old files.
      for (const m of old) this.options.health?.clear(breakerKey(name, m.version));
      this.#log.info(
        { model: name, from: labels(old), to: model.version, path: spec.path },
        'generation model swapped; the old version drains',
      );
      await Promise.all(old.map((m) => this.#retire(m, options.drainTimeoutMs)));
      return this.info(model);
    });
  }

  /**
   * Stops serving a model (or only its `version`, the others serving on): new requests get 404 at once, generations
   * already running finish (up to `drainTimeoutMs`, after which they end with a 503 `model_unloading` error), then
   * its workers close.
   */
  unload(name: string, options: { drainTimeoutMs?: number; version?: string } = {}): Promise<void> {
    return this.#lifecycle.run(name, async () => {
      const models = options.version === undefined ? this.versionsOf(name) : [this.find(name, options.version)];
      if (models.length === 0) this.find(name);
      for (const model of models) {
        model.retired = true;
        this.#remove(model);
        this.#clearHealth(model);
      }
      await Promise.all(models.map((m) => this.#retire(m, options.drainTimeoutMs)));
    });
  }

  #put(model: ServedModel): void {
    let versions = this.#models.get(model.name);
    if (!versions) this.#models.set(model.name, (versions = new Map()));
    versions.set(model.version, model);
  }

  #remove(model: ServedModel): void {
    const versions = this.#models.get(model.name);
    if (versions?.get(model.version) === model) versions.delete(model.version);
    if (versions?.size === 0) this.#models.delete(model.name);
  }

  #clearHealth(m: ServedModel): void {
    this.options.health?.clear(breakerKey(m.name, m.version));
    this.options.health?.clear(backendKey(m.name, m.version));
    this.options.health?.clear(modelKey(m.name, m.version));
  }

  // Opens a model from a spec beside whatever serves under its name, and warms up each replica.
  async #openBeside(spec: LlmModelSpec, version: string, replacing: ServedModel[] = []): Promise<ServedModel> {
    const { name } = spec;
    // In place: its `prepare` writes to the object `#configuredModel` made.
    const model = this.#complete(
      Object.assign(this.#sources.configured(spec), {
        origin: 'runtime' as const,
        version,
        spec: { ...spec, version },
      }),
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
      const kept = replacing.length > 0 ? `; version ${labels(replacing)} keeps serving` : '';
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

  /**
   * The model served under `name` (at `version`, or its default version); 404 `model_not_found` naming those served,
   * or `version_not_found` naming the name's versions.
   */
  find(name: string, version?: string): ServedModel {
    const model = this.served(name, version);
    if (model) return model;
    if (version !== undefined && this.#models.has(name))
      throw notFound(
        'version_not_found',
        `model '${name}' has no version '${version}' (versions: ${labels(this.versionsOf(name))})`,
      );
    const known = [...this.#models.keys()].join(', ') || 'none';
    throw notFound('model_not_found', `The model '${name}' does not exist (served here: ${known})`);
  }

  #add(model: ModelDraft): void {
    this.#put(this.#complete(model));
  }

  // A model with its breaker and telemetry, not yet served under its name.
  #complete(draft: ModelDraft): ServedModel {
    const name = draft.name;
    const model = draft as ServedModel;
    // In place: a configured model's `prepare` writes to this very object.
    Object.assign(model, {
      breaker: this.admission.breaker(name, draft.version),
      loadBackoff: new LoadBackoff(() => ({
        initialMs: this.options.config.get('breaker.loadBackoffMs'),
        maxMs: this.options.config.get('breaker.loadBackoffMaxMs'),
      })),
      telemetry: new ReplicaTelemetry(
        name,
        this.options.events,
        () => model.replicas,
        () => {
          const entry = this.options.config.get('models').find((m) => m.name === name);
          const s = entry?.speculation;
          return (
            s?.method ??
            (s?.draft !== undefined || s?.draftLayers !== undefined || s?.draftQuantize !== undefined
              ? 'draft'
              : undefined) ??
            entry?.speculative ??
            'unknown'
          );
        },
      ),
    });
    return model;
  }

  /**
   * The model that serves what was admitted for `model`: itself, or once it is retired the version that replaced it
   * (or, when that version was unloaded, the name's default version).
   */
  serving(model: ServedModel): ServedModel {
    if (!model.retired) return model;
    const next = this.served(model.name, model.version) ?? this.served(model.name);
    if (next) return next;
    throw notFound('model_not_found', `The model '${model.name}' was unloaded`);
  }

  /**
   * A model's replicas, opened on first use, and again after a failed open once its back-off allows (503
   * `model_unavailable` with Retry-After until then).
   */
  replicasOf(model: ServedModel): Promise<GenerationReplicas> {
    if (this.#stopped) return Promise.reject(unavailable('server_stopping', 'the server is shutting down'));
    // A retired model is never opened again: its replicas only finish what they hold.
    if (model.retired && !model.replicas)
      return Promise.reject(unavailable('model_unloading', `model '${model.name}' was unloaded`));
    if (model.replicas && model.state === 'ready') return Promise.resolve(model.replicas);
    if (!model.starting) {
      const refusal = model.loadBackoff.refusal(model.name);
      if (refusal) return Promise.reject(refusal);
    }
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
      ...(m.state === 'failed' && m.loadBackoff.status() && { loadRetry: m.loadBackoff.status() }),
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

// `2, 3` for messages.
function labels(models: readonly ServedModel[]): string {
  return models.map((m) => m.version).join(', ');
}

// A configured entry's own version label, where it gives one.
function withVersion(draft: ModelDraft, version: unknown): ModelDraft {
  if (typeof version === 'string') draft.version = version;
  return draft;
}
