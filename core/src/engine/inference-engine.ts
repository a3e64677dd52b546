import { performance } from 'node:perf_hooks';
import {
  badRequest,
  NucleusError,
  notFound,
  toNucleusError,
  unavailable,
  type Backend,
  type BuiltinModel,
  type BackendReport,
  type BatchingInfo,
  type BatchingUpdate,
  type EventBus,
  type ExtensionPointView,
  type InferenceService,
  type InferRequest,
  type InferResult,
  type Logger,
  type ModelInfo,
  type ModelVersionInfo,
  type ModelTransform,
  type Progress,
  type RepositoryEntry,
  type ReplicaRouter,
} from '@nucleus/sdk';
import type { ConfigStore } from '../kernel/config/index.js';
import type { HealthState } from '../kernel/health.js';
import { ProgressReporter } from '../kernel/progress-reporter.js';
import type { MemoryPressure } from './memory-pressure.js';
import { BackendSelector } from './backend-selector.js';
import { withDefaultCpu } from './default-cpu-backend.js';
import type { BreakerState } from './circuit-breaker.js';
import type { LoadedModel } from './loaded-model.js';
import { ModelRepository, type ConfiguredModel, type ModelSource, type SourceProblem } from './model-repository.js';
import { takesSameInputs } from './model-fallback.js';
import { openVersion } from './open-version.js';
import { label, VersionTable, type VersionEntry } from './version-table.js';
import { replicasFor } from './workers/isolation-for.js';
import { SharedSessionThread } from './workers/shared-session-thread.js';

/** What the engine needs from the kernel. */
export interface InferenceEngineOptions {
  /** Reads the effective config at a dotted path (`batching.maxBatchSize`); runtime changes apply to the next batch. */
  config: Pick<ConfigStore, 'get'> & Partial<Pick<ConfigStore, 'onChange'>>;
  /** The entries of `models` this engine serves (those no format loads as an LLM); default all. */
  models?: () => readonly ConfiguredModel[];
  events: EventBus;
  logger: Logger;
  health: HealthState;
  backends: ExtensionPointView<Backend>;
  /** `replicaRouter` contributions; `workers.routing` names the one that picks a replica for each batch. */
  replicaRouters?: ExtensionPointView<ReplicaRouter>;
  /** Under memory pressure batches are smaller. */
  memory?: MemoryPressure;
  /** Graph rewrites plugins contribute; `models[].quantize` names one. */
  transforms?: ExtensionPointView<ModelTransform>;
  /** Serve the generated built-in models when no model is configured. Default true. */
  /** The built-in models plugins contribute; the tensor ones serve when `builtinModels` is on. */
  builtins?: ExtensionPointView<BuiltinModel>;
  builtinModels?: boolean;
  /** Where the built-in models are generated (`cache.dir`); default `<repo>/.cache/models`. */
  cacheDir?: string;
  /** A fresh {@link Progress} per long operation (hashing, quantizing); default: a terminal line or periodic log lines. */
  progress?: () => Progress;
}

/**
 * The tensor-model engine: finds model versions in the configured sources, loads each into worker threads with
 * its backend, batches and runs requests, and loads or unloads models on demand. It is the kernel's
 * {@link InferenceService}; API plugins reach it through `Services.inference`.
 */
export class InferenceEngine implements InferenceService {
  readonly #table = new VersionTable();
  readonly #selector: BackendSelector;
  readonly #repository: ModelRepository;
  readonly #log: Logger;
  readonly #progress: () => Progress;
  #queue: Promise<unknown> = Promise.resolve();
  /** Models loaded from a source at run time (`loadSource`, `swap`), by name: the sources beside the repository's. */
  readonly #runtime = new Map<string, ConfiguredModel>();
  /** The worker thread small models share (`workers.shareBelowBytes`). */
  readonly #shared: SharedSessionThread;

  constructor(private readonly options: InferenceEngineOptions) {
    this.#log = options.logger.child({ component: 'engine' });
    this.#shared = new SharedSessionThread({
      niceness: () => options.config.get('workers.niceness'),
      logger: this.#log,
    });
    const reporter = new ProgressReporter({ logger: this.#log });
    this.#progress = options.progress ?? (() => reporter.create());
    this.#selector = new BackendSelector(withDefaultCpu(options.backends), {
      events: options.events,
      logger: this.#log,
    });
    this.#repository = new ModelRepository({
      models: () => this.#configured(),
      repository: options.config.get('modelRepository'),
      builtinModels: options.builtinModels ?? true,
      builtins: () => options.builtins?.list().map((c) => c.value) ?? [],
      ...(options.cacheDir !== undefined && { cacheDir: options.cacheDir }),
      logger: this.#log,
    });
    // Replicas follow `workers.perModel` while serving: added ones open first, retired ones finish their runs.
    options.config.onChange?.((path) => {
      if (path !== 'workers.perModel' && path !== 'workers') return;
      for (const entry of this.#table.all()) {
        entry.model?.pool
          .resize(this.#perModel(entry.name))
          .catch((err: unknown) =>
            this.#log.error(
              { model: entry.name, version: entry.version, err: (err as Error).message },
              'replicas could not be resized',
            ),
          );
      }
    });
  }

  #configured(): readonly ConfiguredModel[] {
    return this.options.models?.() ?? this.options.config.get('models');
  }

  // `models[].workers` for a model that sets it, else `workers.perModel`.
  #perModel(name: string): number {
    return replicasFor(this.options.config, name);
  }

  // The named router when a plugin contributes it; otherwise the pool's own least-busy choice.
  #routing(): ReplicaRouter | undefined {
    return this.options.replicaRouters?.find(this.options.config.get('workers.routing'))?.value;
  }

  /** Loads every model version the sources hold; one that fails is reported (`model.failed`, /ready degraded) and the rest load. */
  start(): Promise<void> {
    return this.#serial(async () => {
      let found: Awaited<ReturnType<ModelRepository['scan']>>;
      try {
        found = await this.#repository.scan();
      } catch (err) {
        // A source that cannot be read (say, a read-only cache for the built-ins) must not keep the server down.
        this.#reportProblem({
          name: '*',
          version: '*',
          path: '',
          reason: `model sources could not be read: ${(err as Error).message}`,
        });
        return;
      }
      const { sources, problems } = found;
      for (const problem of problems) this.#reportProblem(problem);
      if (this.#repository.servesBuiltins)
        this.#log.info({ models: sources.map((s) => s.name) }, 'no models configured; serving the built-in models');
      for (const source of sources) await this.#load(source).catch(() => undefined);
    });
  }

  /** Unloads everything, letting queued and running requests finish first. */
  stop(): Promise<void> {
    return this.#serial(async () => {
      const loaded = [...this.#table.all()].filter((e) => e.model);
      await Promise.all(loaded.map((e) => this.#unloadEntry(e)));
    });
  }

  list(): ModelInfo[] {
    return this.#table.names().map((name) => this.#table.modelInfo(name));
  }

  model(name: string): ModelInfo {
    this.#table.versions(name);
    return this.#table.modelInfo(name);
  }

  get(name: string, version?: string): ModelVersionInfo {
    return this.#table.info(this.#table.chosen(name, version));
  }

  describe(name: string, version?: string): ModelVersionInfo {
    const entry = this.#table.chosen(name, version);
    if (!entry.model) return this.#table.info(entry);
    return {
      ...entry.model.described,
      state: entry.state,
      ...(entry.reason !== undefined && { reason: entry.reason }),
    };
  }

  /** The ready version a request naming none goes to (`model(name).defaultVersion`), without describing the model. */
  defaultVersion(name: string): string | undefined {
    const versions = this.#table.find(name);
    return versions && this.#table.defaultEntry(versions)?.version;
  }

  async infer(request: InferRequest): Promise<InferResult> {
    try {
      return await this.#inferOn(request);
    } catch (err) {
      const fallback = this.#fallbackFor(request, err);
      if (!fallback) throw err;
      const reason = `${(err as NucleusError).code}: ${(err as NucleusError).message}`;
      this.options.events.emit('model.fallback', {
        model: request.model,
        fallback,
        reason,
        ...(request.requestId !== undefined && { requestId: request.requestId }),
      });
      this.#log.warn({ model: request.model, fallback, reason }, 'serving the request with the fallback model');
      const { version: _unused, ...rest } = request;
      return this.#inferOn({ ...rest, model: fallback });
    }
  }

  // The configured fallback of a model that cannot take the request now (breaker open, nothing ready), when it is
  // ready and takes the same inputs; undefined otherwise, so the caller sees the first error.
  #fallbackFor(request: InferRequest, err: unknown): string | undefined {
    if (!(err instanceof NucleusError) || !['circuit_open', 'model_not_ready'].includes(err.code)) return undefined;
    const fallback = this.#configured().find((m) => m.name === request.model)?.fallback;
    if (fallback === undefined || fallback === request.model) return undefined;
    let target: LoadedModel;
    try {
      target = this.loadedModel(fallback);
    } catch {
      return undefined;
    }
    const mine = [...(this.#table.find(request.model)?.values() ?? [])].find((e) => e.model)?.model;
    return takesSameInputs(request, mine, target) ? fallback : undefined;
  }

  async #inferOn(request: InferRequest): Promise<InferResult> {
    const model = this.loadedModel(request.model, request.version);
    const outputs = await model.infer(request.inputs, request.outputs, {
      ...(request.signal !== undefined && { signal: request.signal }),
      ...(request.requestId !== undefined && { requestId: request.requestId }),
      ...(request.priority === 'low' && { low: true }),
    });
    return { model: request.model, version: model.options.source.version, outputs };
  }

  setBatching(name: string, update: BatchingUpdate): BatchingInfo[] {
    const { maxBatchSize, maxQueueDelayMs } = update;
    if (maxBatchSize !== undefined && (!Number.isInteger(maxBatchSize) || maxBatchSize < 1))
      throw badRequest('invalid_batching', `maxBatchSize must be a whole number of 1 or more; got ${maxBatchSize}`);
    if (maxQueueDelayMs !== undefined && !(Number.isFinite(maxQueueDelayMs) && maxQueueDelayMs >= 0))
      throw badRequest('invalid_batching', `maxQueueDelayMs must be 0 or more; got ${maxQueueDelayMs}`);
    const ready = [...this.#table.versions(name).values()].filter((e) => e.model?.state === 'ready');
    if (ready.length === 0) throw unavailable('model_not_ready', `model '${name}' has no ready version`);
    return ready.map((e) => e.model!.retune(update));
  }

  /** The serving instance of a version (the default one when omitted): 404 when unknown, 503 when not ready. */
  loadedModel(name: string, version?: string): LoadedModel {
    const versions = this.#table.versions(name);
    if (version !== undefined) {
      const entry = this.#table.version(name, versions, version);
      if (entry.model?.state === 'ready') return entry.model;
      throw unavailable(
        'model_not_ready',
        `${label(name, version)} is ${entry.state}${entry.reason ? `: ${entry.reason}` : ''}`,
      );
    }
    const entry = this.#table.defaultEntry(versions);
    if (entry?.model) return entry.model;
    const states = [...versions.values()]
      .map((e) => `${e.version}: ${e.state}${e.reason ? ` (${e.reason})` : ''}`)
      .join('; ');
    throw unavailable('model_not_ready', `model '${name}' has no ready version (${states})`);
  }

  load(name: string): Promise<ModelInfo> {
    return this.#serial(async () => {
      const { sources, problems } = await this.#scan();
      const mine = sources.filter((s) => s.name === name);
      const theirProblems = problems.filter((p) => p.name === name);
      for (const problem of theirProblems) this.#reportProblem(problem);
      if (mine.length === 0) {
        if (theirProblems.length > 0)
          throw new NucleusError(422, 'model_load_failed', theirProblems.map((p) => p.reason).join('; '));
        throw notFound(
          'model_not_found',
          `no model source holds a model named '${name}'; POST /v2/repository/index lists what can be loaded`,
        );
      }
      const errors: NucleusError[] = [];
      for (const source of mine) await this.#load(source).catch((err: unknown) => errors.push(toNucleusError(err)));
      // Versions that left the sources go too, the way a repository reload does.
      for (const entry of [...(this.#table.find(name)?.values() ?? [])]) {
        if (entry.model && !mine.some((s) => s.version === entry.version)) await this.#unloadEntry(entry);
      }
      if (errors.length > 0) {
        const first = errors[0]!;
        throw new NucleusError(first.status, first.code, errors.map((e) => e.message).join('; '));
      }
      return this.#table.modelInfo(name);
    });
  }

  /**
   * Unloads one version, or every version, letting queued and running requests finish (up to `drainTimeoutMs`). A
   * model loaded from a source at run time is forgotten once all of it is unloaded (404 afterwards); one the sources
   * hold stays listed as unavailable, to be loaded again.
   */
  unload(name: string, version?: string, options: { drainTimeoutMs?: number } = {}): Promise<void> {
    return this.#serial(async () => {
      const versions = this.#table.versions(name);
      const targets = version === undefined ? [...versions.values()] : [this.#table.version(name, versions, version)];
      const loaded = targets.filter((e) => e.model);
      if (loaded.length === 0)
        throw notFound(
          'model_not_loaded',
          `${version === undefined ? `model '${name}'` : label(name, version)} is not loaded`,
        );
      await Promise.all(loaded.map((e) => this.#unloadEntry(e, options.drainTimeoutMs)));
      if (version === undefined && this.#runtime.delete(name)) for (const e of [...versions.values()]) this.#forget(e);
    });
  }

  /**
   * Loads a model from a source at run time, beside the sources the server found at start: a `.onnx` file, a
   * version folder or a folder of version folders, with a `models[]` entry's settings. 409 when a version of that
   * name is loaded; 400 saying why when the source cannot be loaded (nothing of it is kept then).
   */
  loadSource(spec: ConfiguredModel): Promise<ModelInfo> {
    return this.#serial(async () => {
      if ([...(this.#table.find(spec.name)?.values() ?? [])].some((e) => e.model || e.state === 'loading')) {
        throw new NucleusError(
          409,
          'model_exists',
          `a model named '${spec.name}' is already loaded; swap it (POST /admin/models/${spec.name}/swap) or unload it first`,
        );
      }
      const sources = await this.#runtimeSources(spec);
      try {
        for (const source of sources) await this.#load(source);
      } catch (err) {
        for (const source of sources) {
          const entry = this.#table.find(spec.name)?.get(source.version);
          if (entry?.model) await this.#unloadEntry(entry);
          if (entry) this.#forget(entry);
        }
        throw new NucleusError(
          422,
          'model_load_failed',
          `model '${spec.name}' could not be loaded from ${spec.path}: ${toNucleusError(err).message}`,
          { param: 'source' },
        );
      }
      this.#runtime.set(spec.name, spec);
      return this.#table.modelInfo(spec.name);
    });
  }

  /**
   * Replaces a loaded model with the one at `spec.path`: it is loaded (and warmed up) as a new version beside the old
   * ones, becomes the default from the moment it is ready, and the old versions then finish their queued and running
   * requests (up to `drainTimeoutMs`) and unload. A load that fails leaves the old versions serving and throws 400.
   */
  swap(
    name: string,
    spec: Omit<ConfiguredModel, 'name'>,
    options: { drainTimeoutMs?: number } = {},
  ): Promise<ModelInfo> {
    return this.#serial(async () => {
      const versions = this.#table.versions(name);
      const old = [...versions.values()].filter((e) => e.model);
      if (old.length === 0)
        throw notFound('model_not_loaded', `model '${name}' is not loaded; load it instead of swapping it`);
      const top = [...versions.keys()].map(Number).filter(Number.isInteger);
      const version = spec.version ?? String(Math.max(0, ...top) + 1);
      if (versions.has(version))
        throw badRequest(
          'version_exists',
          `model '${name}' already has a version '${version}'; name a new one or leave version out`,
          'version',
        );
      const { version: _asked, ...settings } = spec;
      const found = await this.#runtimeSources({ ...settings, name });
      if (found.length !== 1)
        throw badRequest(
          'invalid_source',
          `${spec.path} holds ${found.length} versions of a model; a swap takes one: name a .onnx file or one version folder`,
          'source',
        );
      const source = { ...found[0]!, version };
      try {
        await this.#load(source);
      } catch (err) {
        const entry = versions.get(version);
        if (entry) this.#forget(entry);
        const kept = old.map((e) => e.version).join(', ');
        throw new NucleusError(
          422,
          'model_load_failed',
          `model '${name}' could not be loaded from ${spec.path}: ${toNucleusError(err).message}; version ${kept} keeps serving`,
          { param: 'source' },
        );
      }
      for (const entry of old) {
        await this.#unloadEntry(entry, options.drainTimeoutMs);
        this.#forget(entry);
      }
      this.#runtime.set(name, { ...settings, name, version, path: source.modelPath });
      return this.#table.modelInfo(name);
    });
  }

  async index(): Promise<RepositoryEntry[]> {
    const { sources, problems } = await this.#repository.scan();
    return this.#table.repositoryIndex(sources, problems);
  }

  /** Every installed backend with its probe. */
  async backends(): Promise<BackendReport[]> {
    return (await this.#selector.status()).map((s) =>
      s.pluginId === 'kernel' ? { name: s.name, rank: s.rank, probe: s.probe } : s,
    );
  }

  async #load(source: ModelSource): Promise<void> {
    const { name, version } = source;
    // With `quantize`, the rewritten graph is what runs; the entry keeps the source as configured.
    const entry = this.#table.entry(name, version, 'loading');
    const previous = entry.model;
    entry.source = source;
    if (!previous) entry.state = 'loading';
    this.options.events.emit('model.loading', { model: name, version });
    const started = performance.now();
    try {
      const model = await openVersion(source, {
        config: this.options.config,
        selector: this.#selector,
        events: this.options.events,
        logger: this.#log,
        progress: this.#progress,
        ...(this.options.transforms && { transforms: this.options.transforms }),
        ...(this.options.cacheDir !== undefined && { cacheDir: this.options.cacheDir }),
        ...(this.options.memory && { memory: this.options.memory }),
        routing: () => this.#routing(),
        shared: this.#shared,
        onBreaker: (n, v, state, reason) => this.#breakerChanged(n, v, state, reason),
      });
      const fallback = model.backend.fallbackReason;
      const healthKey = `backend:${name}@${version}`;
      if (fallback !== undefined)
        this.options.health.set({
          key: healthKey,
          severity: 'degraded',
          reason: `${label(name, version)}: ${fallback}`,
        });
      else this.options.health.clear(healthKey);
      this.options.health.clear(`model:${name}@${version}`);
      this.options.health.clear(`breaker:${name}@${version}`);
      entry.model = model;
      entry.state = 'ready';
      delete entry.reason;
      const durationMs = performance.now() - started;
      this.options.events.emit('model.loaded', { model: name, version, durationMs, backend: model.backend.name });
      this.#log.info(
        {
          model: name,
          version,
          backend: model.backend.name,
          durationMs: Math.round(durationMs),
          batching: model.batching.enabled,
        },
        'model loaded',
      );
      if (previous) await previous.close(this.#drainMs());
    } catch (err) {
      const error = toNucleusError(err);
      if (previous) {
        entry.state = 'ready';
        entry.reason = `reload failed, the previous load keeps serving: ${error.message}`;
      } else {
        entry.state = 'failed';
        entry.reason = error.message;
        this.options.health.set({
          key: `model:${name}@${version}`,
          severity: this.#missingSeverity(name),
          reason: `${label(name, version)} failed to load: ${error.message}`,
        });
      }
      this.options.events.emit('model.failed', { model: name, version, error: error.message });
      this.#log.error({ model: name, version, error: error.message }, 'model failed to load');
      throw error;
    }
  }

  async #unloadEntry(entry: VersionEntry, drainMs = this.#drainMs()): Promise<void> {
    const model = entry.model;
    if (!model) return;
    entry.state = 'unloading';
    await model.close(drainMs);
    entry.model = undefined;
    entry.state = 'unavailable';
    delete entry.reason;
    this.options.health.clear(`backend:${entry.name}@${entry.version}`);
    this.options.health.clear(`model:${entry.name}@${entry.version}`);
    this.options.health.clear(`breaker:${entry.name}@${entry.version}`);
    this.options.events.emit('model.unloaded', { model: entry.name, version: entry.version });
    this.#log.info({ model: entry.name, version: entry.version }, 'model unloaded');
  }

  // An open breaker makes /ready say why; the event lets dashboards and alerts follow it.
  #breakerChanged(name: string, version: string, state: BreakerState, reason: string): void {
    const key = `breaker:${name}@${version}`;
    if (state === 'closed') this.options.health.clear(key);
    else
      this.options.health.set({
        key,
        // Its requests fail fast: this instance cannot serve the model now.
        severity: 'unready',
        reason: `${label(name, version)}: circuit breaker ${state}: ${reason}`,
      });
    this.options.events.emit('breaker.state', { model: name, version, state, reason });
    this.#log[state === 'closed' ? 'info' : 'warn']({ model: name, version, state, reason }, 'circuit breaker');
  }

  // Drops a version that is not loaded from the list, with what /ready said about it; the name goes with its last version.
  #forget(entry: VersionEntry): void {
    this.#table.forget(entry);
    for (const key of ['model', 'backend', 'breaker'])
      this.options.health.clear(`${key}:${entry.name}@${entry.version}`);
  }

  // What the sources hold: the repository's (config, folder, built-ins), then the models loaded at run time.
  async #scan(): Promise<{ sources: ModelSource[]; problems: SourceProblem[] }> {
    const found = await this.#repository.scan();
    if (this.#runtime.size === 0) return found;
    const added = await this.#sourcesOf([...this.#runtime.values()]).scan();
    return {
      sources: [...found.sources, ...added.sources.map((s) => ({ ...s, origin: 'runtime' as const }))],
      problems: [...found.problems, ...added.problems],
    };
  }

  // The versions a run-time source holds; 400 saying why when it holds none that can be loaded.
  async #runtimeSources(spec: ConfiguredModel): Promise<ModelSource[]> {
    const { sources, problems } = await this.#sourcesOf([spec]).scan();
    if (problems.length > 0 || sources.length === 0) {
      throw badRequest(
        'invalid_source',
        problems.map((p) => p.reason).join('; ') || `${spec.path} holds no model`,
        'source',
      );
    }
    return sources.map((s) => ({ ...s, origin: 'runtime' as const }));
  }

  #sourcesOf(models: ConfiguredModel[]): ModelRepository {
    return new ModelRepository({ models: () => models, repository: null, builtinModels: false, logger: this.#log });
  }

  /** Lists a configured model that cannot load (no format claims its source) as failed, with why. */
  reportUnloadable(name: string, path: string, reason: string): void {
    this.#reportProblem({ name, version: '1', path, reason });
  }

  #reportProblem(problem: SourceProblem): void {
    if (problem.name !== '*' && !this.#table.find(problem.name)?.get(problem.version)?.model)
      this.#table.replace({ name: problem.name, version: problem.version, state: 'failed', reason: problem.reason });
    this.options.health.set({
      key: `model:${problem.name}@${problem.version}`,
      severity: this.#missingSeverity(problem.name),
      reason: problem.reason,
    });
    this.options.events.emit('model.failed', { model: problem.name, version: problem.version, error: problem.reason });
    this.#log.error({ model: problem.name, version: problem.version, error: problem.reason }, 'model cannot be loaded');
  }

  // A configured model that cannot serve makes the server unready; one marked `optional` (or not configured) only
  // degraded.
  #missingSeverity(name: string): 'unready' | 'degraded' {
    const entry = this.options.config.get('models').find((m) => m.name === name);
    return entry && entry.optional !== true ? 'unready' : 'degraded';
  }

  #drainMs(): number {
    return this.options.config.get('plugins.drainTimeoutMs');
  }

  #serial<T>(op: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(op, op);
    this.#queue = run.catch(() => undefined);
    return run;
  }
}
