import type { BuiltinModel, Contribution, ExtensionPointView, Logger } from '@nucleus/sdk';
import { ExtensionPoints, Services } from '@nucleus/sdk';
import { ConfigError, type ConfigIssue, type ConfigStore } from '../kernel/config/index.js';
import type { Kernel } from '../kernel/kernel.js';
import type { KernelModule, MissingModel } from '../kernel/kernel-module.js';
import { BackendSelector } from './backend-selector.js';
import { unknownBackendError } from './declared-backends.js';
import { withDefaultCpu } from './default-cpu-backend.js';
import { InferenceEngine } from './inference-engine.js';
import { GenerationEngine } from './llm/generation/generation-engine.js';
import { MemoryPressure } from './memory-pressure.js';
import { EngineModelRegistry } from './engine-model-registry.js';
import type { ConfiguredModel } from './model-repository.js';
import { ModelFormats } from './model-formats.js';
import { ModelLocator } from './model-locator.js';
import { ModelRoots } from './model-roots.js';

/** Error codes that say a configured source cannot be served as configured: the config must change. */
const SOURCE_ERRORS = new Set([
  'model_source_not_found',
  'unsupported_model_format',
  'unsupported_model',
  'unsupported_model_source',
  'model_sha256_mismatch',
]);

/**
 * The engines as one kernel module: the tensor engine, the generation engine and the memory watch they share, built
 * over the kernel's extension points and registered as `Services.inference` and `Services.generation`. At start, once
 * the plugins (and so the formats) are active, each configured model goes to the engine its format says.
 */
export class Engines implements KernelModule {
  readonly name = 'engines';
  /** The tensor-model engine, also registered as `Services.inference`. */
  readonly inference: InferenceEngine;
  /** The text-generation engine (LLMs and embedding models), also registered as `Services.generation`. */
  readonly generation: GenerationEngine;
  /** Free memory against `memory.pressureFreeBytes`; both engines take less at once under pressure. */
  readonly memory: MemoryPressure;
  /** The `modelFormat` extension point, read. */
  readonly formats: ModelFormats;
  readonly #kernel: Kernel;
  readonly #log: Logger;
  /** Configured models a format loads as LLMs. */
  readonly #llms = new Set<string>();
  /** Configured models no format could load. */
  readonly #unresolved = new Set<string>();
  /** Where configured tensor models with a fetched source (`hf://…`) lie on disk. */
  readonly #localPaths = new Map<string, string>();
  readonly #roots: ModelRoots;

  constructor(kernel: Kernel, options: { builtinModels?: boolean | readonly string[] } = {}) {
    const { config, events, logger, health, extensions } = kernel;
    this.#kernel = kernel;
    this.#roots = new ModelRoots(() => kernel.config.get('allowedModelRoots'));
    this.#log = logger;
    this.formats = new ModelFormats(
      extensions.point(ExtensionPoints.modelFormat),
      logger.child({ component: 'formats' }),
      new ModelLocator(extensions.point(ExtensionPoints.modelSource), logger.child({ component: 'sources' })),
    );
    this.memory = new MemoryPressure({ config, events, logger });
    const builtinModels = options.builtinModels !== false;
    const allBuiltins = extensions.point(ExtensionPoints.builtinModel);
    const builtins = Array.isArray(options.builtinModels)
      ? onlyNamed(allBuiltins, new Set(options.builtinModels))
      : allBuiltins;
    this.inference = new InferenceEngine({
      memory: this.memory,
      config,
      models: () => this.#tensorModels(),
      events,
      logger,
      health,
      backends: extensions.point(ExtensionPoints.backend),
      replicaRouters: extensions.point(ExtensionPoints.replicaRouter),
      transforms: extensions.point(ExtensionPoints.modelTransform),
      builtins,
      ...cacheDirOf(config),
      // Built-ins stand in for "nothing configured"; an LLM in `models` counts as configured.
      builtinModels: builtinModels && this.#configured().length === 0,
    });
    this.generation = new GenerationEngine({
      config,
      events,
      logger,
      health,
      memory: this.memory,
      formats: this.formats,
      llmModels: () => this.#llms,
      backends: extensions.point(ExtensionPoints.backend),
      cachePolicies: extensions.point(ExtensionPoints.cachePolicy),
      strategies: extensions.point(ExtensionPoints.schedulerStrategy),
      replicaRouters: extensions.point(ExtensionPoints.replicaRouter),
      transforms: extensions.point(ExtensionPoints.modelTransform),
      draftProposers: extensions.point(ExtensionPoints.draftProposer),
      builtins,
      ...cacheDirOf(config),
      builtinModels,
    });
    kernel.container.register(Services.inference, { useValue: this.inference });
    kernel.container.register(Services.generation, { useValue: this.generation });
    kernel.container.register(Services.models, {
      useValue: new EngineModelRegistry({
        inference: this.inference,
        generation: this.generation,
        config,
        formats: this.formats,
      }),
    });
  }

  async start(): Promise<void> {
    // Backends come from plugins, so only now can `backend` be checked against the names they give (`Nucleus.create`
    // checked it against those their manifests declare; a plugin may still have failed to activate since).
    const unknown = this.#unknownBackend();
    if (unknown) throw unknown;
    await this.#checkRoots();
    await this.#route();
    // After the plugins, so that a stats plugin hears pressure that is there from the start; before the models,
    // so that they open with the sizes that apply.
    this.memory.start();
    await this.inference.start();
    await this.generation.start();
  }

  async stop(): Promise<void> {
    await Promise.all([this.inference.stop(), this.generation.stop()]);
    this.memory.stop();
  }

  requiredModelsMissing(): MissingModel[] {
    if (!this.#kernel.config.get('startup.requireModels')) return [];
    const missing: MissingModel[] = [];
    for (const m of this.#configured().filter((c) => c.optional !== true)) {
      let reason: string | undefined;
      let badSource = this.#unresolved.has(m.name);
      if (this.#llms.has(m.name)) {
        const info = this.generation.get(m.name);
        if (info.state === 'failed') reason = info.reason ?? 'unknown error';
        // The format refused what the source holds (a checkpoint without its tokenizer, an unsupported architecture).
        badSource = info.errorCode !== undefined && SOURCE_ERRORS.has(info.errorCode);
      } else {
        // Tensor models, and sources no format loads (listed failed with the tensor models, see #route).
        try {
          const versions = this.inference.model(m.name).versions;
          if (!versions.some((v) => v.state === 'ready')) reason = versions.map((v) => v.reason ?? v.state).join('; ');
        } catch (err) {
          reason = (err as Error).message;
        }
      }
      if (reason !== undefined) missing.push({ model: m.name, reason, badSource });
    }
    return missing;
  }

  #configured(): readonly ConfiguredModel[] {
    return this.#kernel.config.get('models');
  }

  // Models configured at start lie under `allowedModelRoots` as run-time loads must: a config that names one
  // elsewhere is refused (exit code 2), every such model named, rather than served.
  async #checkRoots(): Promise<void> {
    const issues: ConfigIssue[] = [];
    for (const [i, m] of this.#configured().entries()) {
      try {
        await this.#roots.check(m.path, m.tokenizer === undefined ? [] : [m.tokenizer]);
      } catch (err) {
        issues.push(this.#outside(i, err));
      }
    }
    if (issues.length > 0) throw new ConfigError(issues);
  }

  #outside(index: number, err: unknown): ConfigIssue {
    const m = this.#configured()[index]!;
    return {
      path: `models.${index}.path`,
      message: `models[${index}] "${m.name}": ${(err as Error).message}`,
      source: this.#kernel.config.sources().get('models') ?? { kind: 'default' },
    };
  }

  // Asks the formats which engine serves each configured model; one no format loads serves nowhere, with why. A
  // source with a scheme is fetched here: its copy must lie under `allowedModelRoots` too.
  async #route(): Promise<void> {
    this.#llms.clear();
    this.#unresolved.clear();
    this.#localPaths.clear();
    const outside: ConfigIssue[] = [];
    for (const [i, m] of this.#configured().entries()) {
      try {
        const { match, format, source } = await this.formats.resolve(m.path, m.sha256 ? { sha256: m.sha256 } : {});
        if (ModelLocator.schemeOf(m.path) !== undefined) {
          const refused = await this.#roots.checkCopy(m.path, source.path).then(
            () => undefined,
            (err: unknown) => this.#outside(i, err),
          );
          if (refused) {
            outside.push(refused);
            continue;
          }
        }
        if (match.kind === 'llm') this.#llms.add(m.name);
        else if (source.path !== source.source && ModelLocator.schemeOf(m.path) !== undefined)
          this.#localPaths.set(m.name, source.path);
        this.#log.debug(
          { model: m.name, format: format?.name ?? 'onnx graph', kind: match.kind, reason: match.reason },
          'model format',
        );
      } catch (err) {
        const reason = (err as Error).message;
        this.#unresolved.add(m.name);
        // Listed with the tensor models (their list is where a failed source shows), with the formats' reason.
        this.inference.reportUnloadable(m.name, m.path, reason);
      }
    }
    if (outside.length > 0) throw new ConfigError(outside);
  }

  #tensorModels(): ConfiguredModel[] {
    return this.#configured()
      .filter((m) => !this.#llms.has(m.name) && !this.#unresolved.has(m.name))
      .map((m) => {
        const local = this.#localPaths.get(m.name);
        return local === undefined ? m : { ...m, path: local };
      });
  }

  // `backend` naming no installed backend, as a config error naming those that are.
  #unknownBackend(): ConfigError | undefined {
    const { config, extensions } = this.#kernel;
    const selector = new BackendSelector(withDefaultCpu(extensions.point(ExtensionPoints.backend)));
    return unknownBackendError(config, selector.names());
  }
}

// `cache.dir` when set; otherwise the engines' own default (`.cache/models` in the project root).
function cacheDirOf(config: Pick<ConfigStore, 'get'>): { cacheDir?: string } {
  const dir = config.get('cache.dir');
  return dir === null ? {} : { cacheDir: dir };
}

/** The built-in models of `point` whose model names are in `names`, as a point of their own. */
function onlyNamed(
  point: ExtensionPointView<BuiltinModel>,
  names: ReadonlySet<string>,
): ExtensionPointView<BuiltinModel> {
  const kept = (c: Contribution<BuiltinModel>) => names.has(c.value.name);
  return {
    id: point.id,
    list: () => point.list().filter(kept),
    first: () => point.list().find(kept),
    find: (name) => {
      const c = point.find(name);
      return c && kept(c) ? c : undefined;
    },
    use: (c, fn) => point.use(c, fn),
    onChange: (listener) => point.onChange((change, c) => kept(c) && listener(change, c)),
  };
}
