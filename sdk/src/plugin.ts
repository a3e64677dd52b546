import type { DependencyContainer } from 'tsyringe';
import type { EventBus } from './events.js';
import type { Contribution, ExtensionPointRef, ExtensionPointView } from './extension-points.js';
import type { Logger } from './logger.js';
import type { ResolvedDeps, ServiceRef } from './services.js';

/** The version of the kernel API this SDK describes; manifests name a semver range of it in `kernelApi`. */
export const KERNEL_API_VERSION = '1.2.0';

/** The `nucleus` section of a plugin's package.json. */
export interface PluginManifest {
  /** Unique id, lowercase with dashes: `backend-cpu`. */
  id: string;
  /** The plugin's semver version. */
  version: string;
  /** Semver range of the kernel API the plugin works with. */
  kernelApi: string;
  /** One line saying what the plugin does. */
  description?: string;
  /** Capabilities offered, as `point:name` (`backend:cpu`, `routes:kserve-v2`). */
  provides?: string[];
  /** Other plugins this one needs, by id, each with a semver range. */
  requires?: Record<string, string>;
  /** JSON Schema of the plugin's config section (`plugin.<id>` in the config). */
  configSchema?: Record<string, unknown>;
  /** Module to import, relative to the package folder. */
  entry: string;
  /** Whether the plugin activates at start when config does not say. Default true. */
  enabledByDefault?: boolean;
}

/** Options of one contribution. */
export interface ContributeOptions {
  /** Higher wins where one contribution is chosen. Default 0. */
  priority?: number;
  /** Unique among this plugin's contributions to that point; defaults to the value's `name`, else `<plugin>:<point>:<n>`. */
  name?: string;
}

/** What a plugin receives when it activates. Everything it registers here is dropped when it is deactivated. */
export interface PluginContext<C = Record<string, unknown>> {
  readonly id: string;
  readonly version: string;
  /** This plugin's config section, validated against its schema with defaults applied. */
  readonly config: C;
  readonly logger: Logger;
  readonly events: EventBus;
  /** This activation's own child container; the kernel's services resolve through it. */
  readonly container: DependencyContainer;
  /** Aborted when this activation starts to deactivate. */
  readonly signal: AbortSignal;
  /**
   * False when the kernel runs a one-shot command (`nucleus quantize`, `models ls`, `pull`, `batch`) rather than a
   * server: a plugin that opens a listener of its own (a gRPC port) leaves it closed then. Kernel API 1.2.
   */
  readonly serving: boolean;
  /** Adds a contribution to an extension point. */
  contribute<T>(point: ExtensionPointRef<T>, value: T, options?: ContributeOptions): Contribution<T>;
  /** A live view of an extension point. */
  extensionPoint<T>(point: ExtensionPointRef<T>): ExtensionPointView<T>;
  /** Reads the effective server config at a dotted path. */
  configValue(path: string): unknown;
  /** Runs when this activation is disposed, after its in-flight uses have drained; last registered runs first. */
  onDispose(fn: () => void | Promise<void>): void;
  /**
   * A value kept in memory across this plugin's reloads, by name: the first activation creates it, later ones (a
   * reload, a new version) get the same object. Dropped when the plugin is disabled or the server stops. Every version
   * that reads it must understand it: name it anew when its shape changes. Kernel API 1.1.
   */
  keep<T>(name: string, create: () => T): T;
}

/** What a plugin's entry module exports as default. */
export interface PluginDefinition<
  C = Record<string, unknown>,
  D extends Record<string, ServiceRef<unknown>> = Record<string, never>,
> {
  /**
   * The kernel services the plugin uses, by the name `activate` receives them under (`{ models: ServiceRefs.models }`).
   * A required service the runtime does not offer fails the activation, saying which.
   */
  deps?: D;
  /** Wires the plugin: contribute to extension points, subscribe to events. Throwing marks the plugin failed. */
  activate(ctx: PluginContext<C>, deps: ResolvedDeps<D>): void | Promise<void>;
  /** Optional extra teardown before the disposers registered with `onDispose` run. */
  deactivate?(ctx: PluginContext<C>): void | Promise<void>;
}

const PLUGIN_BRAND = Symbol.for('nucleus.plugin');

/** Declares a plugin; export the result as the entry module's default export. */
export function definePlugin<
  C = Record<string, unknown>,
  D extends Record<string, ServiceRef<unknown>> = Record<string, never>,
>(definition: PluginDefinition<C, D>): PluginDefinition<C, D> {
  return Object.assign(Object.create(null), definition, { [PLUGIN_BRAND]: true }) as PluginDefinition<C, D>;
}

/** True when a value was made by {@link definePlugin}. */
export function isPluginDefinition(value: unknown): value is PluginDefinition<Record<string, unknown>> {
  return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[PLUGIN_BRAND] === true;
}
