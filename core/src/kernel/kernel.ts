import 'reflect-metadata';
import { isAbsolute, join, resolve } from 'node:path';
import type { Logger, PluginDirectory } from '@nucleus/sdk';
import { ExtensionPoints, Services } from '@nucleus/sdk';
import type { DestinationStream } from 'pino';
import { container as rootContainer, type DependencyContainer } from 'tsyringe';
import { InferenceEngine } from '../engine/inference-engine.js';
import { MemoryPressure } from '../engine/memory-pressure.js';
import { BackendSelector } from '../engine/backend-selector.js';
import { withDefaultCpu } from '../engine/default-cpu-backend.js';
import { GenerationEngine, isLlmModelPath } from '../engine/llm/generation/generation-engine.js';
import { ConfigError, ConfigStore, describeSource, loadConfig, type LoadConfigOptions } from './config/index.js';
import { TypedEventBus } from './event-bus.js';
import { ExtensionRegistry } from './extension-registry.js';
import { HealthState } from './health.js';
import { createLogger, type LogFormat, type LogLevel } from './logger.js';
import type { DiscoveryOptions } from './plugin-discovery.js';
import { discoverPlugins } from './plugin-discovery.js';
import { PluginHost } from './plugin-host.js';
import { PluginWatcher } from './plugin-watcher.js';
import { defaultProjectRoot } from './project-root.js';

/** How to build a kernel. */
export interface KernelOptions extends Pick<LoadConfigOptions, 'file' | 'env' | 'cli'> {
  /** Folder whose `plugins/` and `node_modules/` are scanned; defaults to the Nucleus checkout or the current directory. */
  projectRoot?: string;
  /** Replaces the default plugin folders (`<root>/plugins`), e.g. for tests. */
  pluginFolders?: string[];
  /** Replaces the default `node_modules` folders scanned for `nucleus-plugin` packages. */
  nodeModules?: string[];
  /** Where JSON log lines go; stdout by default. */
  logDestination?: DestinationStream;
  /** Serve the generated built-in models when no model is configured (default true). */
  builtinModels?: boolean;
}

/**
 * The microkernel: a root container, the extension points, the event bus, the config and the plugin
 * host. It knows no plugin; everything a user can switch on or off arrives through the host.
 */
export class Kernel {
  readonly container: DependencyContainer;
  readonly events: TypedEventBus;
  readonly extensions: ExtensionRegistry;
  readonly health = new HealthState();
  readonly plugins: PluginHost;
  /** The tensor-model engine, also registered as `Services.inference`. */
  readonly inference: InferenceEngine;
  /** The text-generation engine (LLMs and embedding models), also registered as `Services.generation`. */
  readonly generation: GenerationEngine;
  /** Free memory against `memory.pressureFreeBytes`; both engines take less at once under pressure. */
  readonly memory: MemoryPressure;
  private watcher?: PluginWatcher;

  private constructor(
    readonly config: ConfigStore,
    readonly logger: Logger & { level: string },
    private readonly discovery: DiscoveryOptions,
    builtinModels: boolean,
  ) {
    this.events = new TypedEventBus(logger);
    this.extensions = new ExtensionRegistry(this.events);
    // A child of tsyringe's global container, so two kernels in one process (tests) never share state.
    this.container = rootContainer.createChildContainer();
    this.container.register(Services.events, { useValue: this.events });
    this.container.register(Services.logger, { useValue: logger });
    this.memory = new MemoryPressure({ config, events: this.events, logger });
    this.inference = new InferenceEngine({
      memory: this.memory,
      config: tensorModelsOnly(config),
      events: this.events,
      logger,
      health: this.health,
      backends: this.extensions.point(ExtensionPoints.backend),
      strategies: this.extensions.point(ExtensionPoints.schedulerStrategy),
      transforms: this.extensions.point(ExtensionPoints.modelTransform),
      ...cacheDirOf(config),
      // Built-ins stand in for "nothing configured"; an LLM in `models` counts as configured.
      builtinModels: builtinModels && ((config.get('models') as unknown[] | undefined) ?? []).length === 0,
    });
    this.container.register(Services.inference, { useValue: this.inference });
    this.generation = new GenerationEngine({
      config,
      events: this.events,
      logger,
      health: this.health,
      memory: this.memory,
      backends: this.extensions.point(ExtensionPoints.backend),
      cachePolicies: this.extensions.point(ExtensionPoints.cachePolicy),
      strategies: this.extensions.point(ExtensionPoints.schedulerStrategy),
      transforms: this.extensions.point(ExtensionPoints.modelTransform),
      draftProposers: this.extensions.point(ExtensionPoints.draftProposer),
      ...cacheDirOf(config),
      builtinModels,
    });
    this.container.register(Services.generation, { useValue: this.generation });
    this.plugins = new PluginHost({
      container: this.container,
      registry: this.extensions,
      events: this.events,
      logger,
      configValue: (path) => config.get(path),
      config: { pluginConfig: (id) => (config.get(`plugin.${id}`) as Record<string, unknown> | undefined) ?? {} },
      discovery,
      disabled: config.get('plugins.disabled') as string[],
      drainTimeoutMs: config.get('plugins.drainTimeoutMs') as number,
    });
    const directory: PluginDirectory = { list: () => this.plugins.list() };
    this.container.register(Services.plugins, { useValue: directory });
    config.onChange((path, value, previous) => {
      this.events.emit('config.changed', { path, value, previous });
      if (path === 'logging.level') logger.level = value as string;
    });
  }

  /**
   * Reads the config, discovers plugins (once) and validates the whole config, each plugin's section
   * against its own schema. Throws `ConfigError` naming every bad key.
   */
  static create(options: KernelOptions = {}): Kernel {
    const root = options.projectRoot ?? defaultProjectRoot();
    // A first pass only for `plugins.dirs`; its problems are reported by the second, with those of plugin sections.
    const base = loadConfig({ file: options.file, env: options.env, cli: options.cli, ignoreUnknownPluginSections: true, keepIssues: true });
    const listed: unknown = base.config.plugins?.dirs;
    const dirs = (Array.isArray(listed) ? listed.filter((d): d is string => typeof d === 'string') : []).map((d) => (isAbsolute(d) ? d : resolve(d)));
    const discovery: DiscoveryOptions = {
      pluginFolders: options.pluginFolders ?? [join(root, 'plugins')],
      nodeModules: options.nodeModules ?? [join(root, 'node_modules')],
      configDirs: dirs,
    };
    const found = discoverPlugins(discovery);
    const pluginSchemas = Object.fromEntries(
      found.filter((p) => p.manifest?.configSchema).map((p) => [p.manifest!.id, p.manifest!.configSchema!]),
    );
    const loaded = loadConfig({ file: options.file, env: options.env, cli: options.cli, pluginSchemas });
    const config = new ConfigStore(loaded);
    const logger = createLogger({
      level: config.get('logging.level') as LogLevel,
      format: config.get('logging.format') as LogFormat,
      destination: options.logDestination,
    });
    for (const warning of loaded.warnings) logger.warn(warning);
    const kernel = new Kernel(config, logger, discovery, options.builtinModels ?? true);
    kernel.plugins.adopt(found);
    return kernel;
  }

  /** Activates the discovered plugins, loads the models (on the backends the plugins gave), then watches plugin folders when `plugins.watch` is on. */
  async start(): Promise<void> {
    await this.plugins.start();
    // Backends come from plugins, so only now can `backend` be checked against the names they give.
    const unknown = this.#unknownBackend();
    if (unknown) {
      await this.plugins.stop();
      throw unknown;
    }
    // After the plugins, so that a stats plugin hears pressure that is there from the start; before the models,
    // so that they open with the sizes that apply.
    this.memory.start();
    await this.inference.start();
    await this.generation.start();
    if (this.config.get('plugins.watch')) {
      const folders = [
        ...this.discovery.pluginFolders.map((dir) => ({ dir, source: 'folder' as const })),
        ...this.discovery.configDirs.map((dir) => ({ dir, source: 'config' as const })),
      ];
      this.watcher = new PluginWatcher(this.plugins, folders, this.logger);
      await this.watcher.start();
    }
    this.health.setPhase('running');
  }

  // `backend` naming no installed backend, as a config error naming those that are.
  #unknownBackend(): ConfigError | undefined {
    const requested = this.config.get('backend') as string | undefined;
    if (requested === undefined) return undefined;
    const selector = new BackendSelector(withDefaultCpu(this.extensions.point(ExtensionPoints.backend)));
    if (requested === 'auto' || selector.find(requested) !== undefined) return undefined;
    const source = this.config.sources().get('backend') ?? { kind: 'default' as const };
    return new ConfigError([
      {
        path: 'backend',
        message: `backend '${requested}' (from ${describeSource(source)}) is not installed; the backends installed are ${selector.names().join(', ')}`,
        source,
      },
    ]);
  }

  /** Configured models that must serve (`startup.requireModels`, `models[].optional`) and do not, each with why; built-ins never count. */
  requiredModelsMissing(): string[] {
    if (this.config.get('startup.requireModels') === false) return [];
    const configured = (this.config.get('models') as { name: string; path: string; optional?: boolean }[] | undefined) ?? [];
    const missing: string[] = [];
    for (const m of configured.filter((c) => c.optional !== true)) {
      let reason: string | undefined;
      if (isLlmModelPath(m.path)) {
        const info = this.generation.get(m.name);
        if (info.state === 'failed') reason = info.reason ?? 'unknown error';
      } else {
        try {
          const versions = this.inference.model(m.name).versions;
          if (!versions.some((v) => v.state === 'ready')) reason = versions.map((v) => v.reason ?? v.state).join('; ');
        } catch (err) {
          reason = (err as Error).message;
        }
      }
      if (reason !== undefined) missing.push(`model '${m.name}' failed to load: ${reason}`);
    }
    return missing;
  }

  /** Stops watching, unloads the models, then deactivates every plugin, dependents first. */
  async stop(): Promise<void> {
    this.health.setPhase('stopping');
    await this.watcher?.stop();
    await Promise.all([this.inference.stop(), this.generation.stop()]);
    this.memory.stop();
    await this.plugins.stop();
  }
}

// Each configured model goes to the engine that loads it: LLM files and folders (GGUF, llama2.c, Hugging Face
// exports) to the generation engine, everything else to the tensor engine.
function tensorModelsOnly(config: ConfigStore): { get(path: string): unknown; onChange: ConfigStore['onChange'] } {
  return {
    onChange: (listener) => config.onChange(listener),
    get: (path) => {
      const value = config.get(path);
      return path === 'models' && Array.isArray(value) ? value.filter((m: { path: string }) => !isLlmModelPath(m.path)) : value;
    },
  };
}

// `cache.dir` when set; otherwise the engines' own default (`.cache/models` in the project root).
function cacheDirOf(config: ConfigStore): { cacheDir?: string } {
  const dir = config.get('cache.dir') as string | null | undefined;
  return typeof dir === 'string' ? { cacheDir: dir } : {};
}
