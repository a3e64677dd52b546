import type { EventBus } from './events.js';
import type { GenerationService } from './generation.js';
import type { InferenceService } from './inference.js';
import type { Logger } from './logger.js';
import type { ModelRegistry } from './model-registry.js';
import type { PluginDirectory, Readiness } from './observability.js';
import type { RequestAuthenticator } from './request-authenticator.js';
import type { ProcessGroup } from './process-group.js';
import type { RouteCatalog } from './route-catalog.js';
import type { RuntimeConfig } from './runtime-config.js';

/** Tokens under which the kernel registers its services in every plugin's container (`ctx.container.resolve(Services.events)`). */
export const Services = {
  /** The {@link EventBus}. */
  events: 'nucleus.events',
  /** The kernel's root {@link Logger}. */
  logger: 'nucleus.logger',
  /** The plugin's {@link PluginContext} (only in a plugin's own container). */
  context: 'nucleus.pluginContext',
  /** The read-only {@link PluginDirectory}: every plugin and its state. */
  plugins: 'nucleus.plugins',
  /** The tensor-model {@link InferenceService}: list, run, load and unload models. */
  inference: 'nucleus.inference',
  /** The text-generation {@link GenerationService}: list models, generate, embed. */
  generation: 'nucleus.generation',
  /** The {@link ModelRegistry}: load, swap and unload tensor models and LLMs at run time. */
  models: 'nucleus.models',
  /** The server's {@link Readiness}, as `/ready` reports it. */
  readiness: 'nucleus.readiness',
  /** The server's {@link RequestAuthenticator}: the HTTP key check, for protocols served outside HTTP (gRPC). */
  auth: 'nucleus.auth',
  /** The {@link ProcessGroup}: the front processes serving the port together. */
  processGroup: 'nucleus.processGroup',
  /** The {@link RouteCatalog}: every route the HTTP server answers now (only where a server runs). */
  routes: 'nucleus.routes',
  /** The {@link RuntimeConfig}: read the config and change its runtime-adjustable keys. */
  config: 'nucleus.config',
} as const;

/**
 * A typed handle on a kernel service, for a plugin's `deps`: the plugin declares what it needs and `activate` receives
 * it, typed, instead of looking a string up in the container.
 */
export interface ServiceRef<T> {
  readonly id: string;
  /** An optional dependency is `undefined` where the runtime offers no such service (a bare kernel has no engines). */
  readonly optional: boolean;
  /** Phantom field carrying the service type; never set. */
  readonly __type?: T;
}

/** Declares a service ref. */
export function serviceRef<T>(id: string): ServiceRef<T> {
  return Object.freeze({ id, optional: false });
}

/** The same service, as a dependency the plugin can do without: `undefined` where it is not offered. */
export function optionalService<T>(ref: ServiceRef<T>): ServiceRef<T | undefined> {
  return Object.freeze({ id: ref.id, optional: true });
}

/** The kernel's services as typed refs (the ids of {@link Services}). */
export const ServiceRefs = {
  events: serviceRef<EventBus>(Services.events),
  logger: serviceRef<Logger>(Services.logger),
  plugins: serviceRef<PluginDirectory>(Services.plugins),
  inference: serviceRef<InferenceService>(Services.inference),
  generation: serviceRef<GenerationService>(Services.generation),
  models: serviceRef<ModelRegistry>(Services.models),
  readiness: serviceRef<Readiness>(Services.readiness),
  auth: serviceRef<RequestAuthenticator>(Services.auth),
  processGroup: serviceRef<ProcessGroup>(Services.processGroup),
  routes: serviceRef<RouteCatalog>(Services.routes),
  config: serviceRef<RuntimeConfig>(Services.config),
} as const;

/** What `activate` receives for a plugin's `deps`: each ref's service. */
export type ResolvedDeps<D extends Record<string, ServiceRef<unknown>>> = {
  readonly [K in keyof D]: D[K] extends ServiceRef<infer T> ? T : never;
};
