import 'reflect-metadata';
import { isAbsolute, join, resolve } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import type { Logger, PluginDirectory, RuntimeConfig } from '@nucleus/sdk';
import { Services } from '@nucleus/sdk';
import type { DestinationStream } from 'pino';
import { container as rootContainer, type DependencyContainer } from 'tsyringe';
import {
  type ConfigPath,
  ConfigStore,
  configKeys,
  describeSource,
  type JsonSchema,
  loadConfig,
  type LoadConfigOptions,
} from './config/index.js';
import { TypedEventBus } from './event-bus.js';
import { ExtensionRegistry } from './extension-registry.js';
import { HealthState } from './health.js';
import type { KernelModule, MissingModel } from './kernel-module.js';
import { parseLogLine } from './log-line.js';
import { createLogger, onLogLine } from './logger.js';
import type { DiscoveredPlugin, DiscoveryOptions } from './plugin-discovery.js';
import { discoverPlugins } from './plugin-discovery.js';
import { RouteConflictError } from './plugin-contract.js';
import { PluginHost } from './plugin-host.js';
import { PluginWatcher } from './plugin-watcher.js';
import { ProcessGroupMember } from './process-group.js';
import { defaultProjectRoot } from './project-root.js';

/** How to build a kernel. */
export interface KernelOptions extends Pick<LoadConfigOptions, 'file' | 'env' | 'cli'> {
  /**
   * Folder whose `plugins/` and `node_modules/` are scanned; defaults to the Nucleus checkout or the current
   * directory.
   */
  projectRoot?: string;
  /** Replaces the default plugin folders (`<root>/plugins`), e.g. for tests. */
  pluginFolders?: string[];
  /** Replaces the default `node_modules` folders scanned for `nucleus-plugin` packages. */
  nodeModules?: string[];
  /** Where JSON log lines go; stdout by default. */
  logDestination?: DestinationStream;
  /**
   * False for a one-shot command that activates plugins without serving: they see `ctx.serving` false and open no
   * listeners of their own. Default true.
   */
  serving?: boolean;
}

/**
 * The microkernel: a root container, the extension points, the event bus, the config and the plugin
 * host. It knows no plugin and builds no engine: plugins arrive through the host, and the engines are
 * modules handed over by whoever composes the runtime (`Nucleus`).
 */
export class Kernel {
  readonly container: DependencyContainer;
  readonly events: TypedEventBus;
  readonly extensions: ExtensionRegistry;
  readonly health = new HealthState();
  readonly plugins: PluginHost;
  /** The front processes serving the port with this one (`server.processes`); this process alone by default. */
  readonly processGroup: ProcessGroupMember;
  readonly #modules: KernelModule[] = [];
  #watcher?: PluginWatcher;

  protected constructor(
    readonly config: ConfigStore,
    readonly logger: Logger & { level: string },
    private readonly discovery: DiscoveryOptions,
    serving = true,
  ) {
    this.events = new TypedEventBus(logger);
    // A line logged while a line is relayed (a listener that fails, a socket that reads too slowly) is not relayed
    // again: one line never becomes a loop.
    let relaying = false;
    onLogLine(logger, (line) => {
      if (relaying) return;
      relaying = true;
      try {
        const parsed = parseLogLine(line);
        if (parsed) this.events.emit('log.line', parsed);
      } finally {
        relaying = false;
      }
    });
    this.extensions = new ExtensionRegistry(this.events);
    // A child of tsyringe's global container, so two kernels in one process (tests) never share state.
    this.container = rootContainer.createChildContainer();
    this.container.register(Services.events, { useValue: this.events });
    this.container.register(Services.logger, { useValue: logger });
    this.plugins = new PluginHost({
      container: this.container,
      registry: this.extensions,
      events: this.events,
      logger,
      // A plugin may ask for any path; one the config does not have reads undefined.
      configValue: (path) => config.get(path as ConfigPath),
      serving,
      config: {
        // Every activation passes here, so a plugin found after start (the watcher, `plugins.dirs`) or enabled or
        // reloaded later has its section checked against the schema it brings now and its defaults filled.
        pluginConfig: (id, schema) => {
          if (schema !== undefined) config.setPluginSchema(id, schema as JsonSchema);
          return config.pluginSection(id);
        },
      },
      discovery,
      disabled: config.get('plugins.disabled'),
      drainTimeoutMs: config.get('plugins.drainTimeoutMs'),
    });
    const directory: PluginDirectory = {
      list: () => this.plugins.list(),
      config: (id) => {
        const schema = config.pluginSchema(id);
        if (!schema) return undefined;
        const prefix = `plugin.${id}.`;
        return {
          schema,
          values: (config.redacted().plugin as Record<string, Record<string, unknown>>)[id] ?? {},
          runtimeKeys: config
            .runtimeKeys()
            .filter((k) => k.startsWith(prefix))
            .map((k) => k.slice(prefix.length)),
        };
      },
    };
    this.container.register(Services.plugins, { useValue: directory });
    this.container.register(Services.readiness, { useValue: this.health });
    this.processGroup = new ProcessGroupMember(config.get('server.processes'));
    this.container.register(Services.processGroup, { useValue: this.processGroup });
    const runtimeConfig: RuntimeConfig = {
      get: (path) => config.get(path as ConfigPath),
      patch: (changes, source) => void config.patch(changes, source),
    };
    this.container.register(Services.config, { useValue: runtimeConfig });
    config.onChange((path, value, previous) => {
      // Events reach exporters, logs and admin sockets: a secret changed at run time (an API key) is not shown there.
      this.events.emit('config.changed', {
        path,
        value: config.redactedValue(path, value),
        previous: config.redactedValue(path, previous),
      });
      if (path === 'logging.level') logger.level = value as string;
    });
  }

  /**
   * Reads the config, discovers plugins (once) and validates the whole config, each plugin's section
   * against its own schema. Throws `ConfigError` naming every bad key.
   */
  static create(options: KernelOptions = {}): Kernel {
    const { config, logger, discovery, found } = Kernel.prepare(options);
    const kernel = new Kernel(config, logger, discovery, options.serving);
    kernel.plugins.adopt(found);
    return kernel;
  }

  /** What a kernel is built from: the validated config, the logger and the plugins found (for subclasses' `create`). */
  protected static prepare(options: KernelOptions): {
    config: ConfigStore;
    logger: Logger & { level: string };
    discovery: DiscoveryOptions;
    found: ReturnType<typeof discoverPlugins>;
  } {
    const root = options.projectRoot ?? defaultProjectRoot();
    // A first pass only for `plugins.dirs`, unchecked: its problems are reported by the second, with those of plugin
    // sections, and the schema is compiled once, with every plugin's section in it.
    const base = loadConfig({
      file: options.file,
      env: options.env,
      cli: options.cli,
      ignoreUnknownPluginSections: true,
      keepIssues: true,
      validate: false,
    });
    const listed: unknown = base.config.plugins?.dirs;
    const dirs = (Array.isArray(listed) ? listed.filter((d): d is string => typeof d === 'string') : []).map((d) =>
      isAbsolute(d) ? d : resolve(d),
    );
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
      level: config.get('logging.level'),
      format: config.get('logging.format'),
      destination: options.logDestination,
    });
    for (const warning of [...loaded.warnings, ...keysNoPluginReads(config, found)]) logger.warn(warning);
    return { config, logger, discovery, found };
  }

  /** Hands the kernel a module (an engine) to start after the plugins and stop before them. */
  use(module: KernelModule): void {
    this.#modules.push(module);
  }

  /**
   * Activates the discovered plugins, starts the modules (the engines load their models), then watches plugin folders
   * when `plugins.watch` is on.
   */
  async start(): Promise<void> {
    await this.plugins.start();
    // Two plugins serving one route is a set-up mistake: serving whichever activated first would hide it.
    const conflicts = this.plugins.routeConflicts();
    if (conflicts.length > 0) {
      await this.plugins.stop();
      throw new RouteConflictError(conflicts);
    }
    try {
      for (const module of this.#modules) await module.start();
    } catch (err) {
      await this.plugins.stop();
      throw err;
    }
    if (this.config.get('plugins.watch')) {
      const folders = [
        ...this.discovery.pluginFolders.map((dir) => ({ dir, source: 'folder' as const })),
        ...this.discovery.configDirs.map((dir) => ({ dir, source: 'config' as const })),
      ];
      this.#watcher = new PluginWatcher(this.plugins, folders, this.logger, undefined, this.events);
      await this.#watcher.start();
    }
    this.health.setPhase('running');
  }

  /**
   * Configured models that must serve (`startup.requireModels`, `models[].optional`) and do not, each with why;
   * built-ins never count.
   */
  requiredModelsMissing(): MissingModel[] {
    return this.#modules.flatMap((m) => m.requiredModelsMissing?.() ?? []);
  }

  /**
   * Stops watching, stops the modules (the engines unload their models), then deactivates every plugin, dependents
   * first.
   */
  async stop(): Promise<void> {
    this.health.setPhase('stopping');
    await this.#watcher?.stop();
    await Promise.all(this.#modules.map((m) => m.stop()));
    await this.plugins.stop();
    this.processGroup.close();
  }
}

/**
 * Keys only a plugin reads (`x-plugin`) that are set away from their default while that plugin will not run: a start
 * that ignores them silently (`tuning.enabled: true` with the tuner disabled) looks like a bug in the key.
 */
function keysNoPluginReads(config: ConfigStore, found: readonly DiscoveredPlugin[]): string[] {
  const disabled = config.get('plugins.disabled');
  const warnings: string[] = [];
  for (const key of configKeys(config.schema())) {
    const id = key.schema['x-plugin'];
    const value: unknown = config.get(key.path as ConfigPath);
    if (id === undefined || isDeepStrictEqual(value, key.schema.default)) continue;
    const plugin = found.find((p) => p.id === id);
    const why =
      plugin === undefined
        ? `no plugin "${id}" is installed`
        : plugin.manifest === undefined
          ? `plugin "${id}", which reads it, is invalid: ${plugin.error}`
          : disabled.includes(id)
            ? `plugin "${id}", which reads it, is disabled (plugins.disabled)`
            : plugin.manifest.enabledByDefault === false
              ? `plugin "${id}", which reads it, is off until enabled (POST /admin/plugins/${id}/enable)`
              : undefined;
    if (why === undefined) continue;
    const source = describeSource(config.sources().get(key.path) ?? { kind: 'default' });
    warnings.push(`${key.path} is ${JSON.stringify(value)} (from ${source}) but ${why}: it does nothing`);
  }
  return warnings;
}
