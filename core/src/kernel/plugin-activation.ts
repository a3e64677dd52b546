import type {
  Contribution,
  ContributeOptions,
  EventBus,
  ExtensionPointRef,
  Logger,
  PluginContext,
  PluginDefinition,
  PluginManifest,
  ResolvedDeps,
  ServiceRef,
} from '@nucleus/sdk';
import { Services } from '@nucleus/sdk';
import type { DependencyContainer } from 'tsyringe';
import { ActivationLease } from './activation-lease.js';
import type { ExtensionRegistry, StagedContribution } from './extension-registry.js';

/** What an activation needs from the kernel. */
export interface ActivationDeps {
  container: DependencyContainer;
  registry: ExtensionRegistry;
  events: EventBus;
  logger: Logger;
  /** The effective server config at a dotted path. */
  configValue(path: string): unknown;
  /** Whether the kernel serves requests, or runs a one-shot command (`PluginContext.serving`). */
  serving: boolean;
}

/**
 * One activation of one plugin version: its child container, the contributions it made, the uses in
 * flight and the disposers to run. Hot reload runs two of these side by side for a moment.
 */
export class PluginActivation {
  readonly lease = new ActivationLease();
  readonly staged: StagedContribution[] = [];
  readonly container: DependencyContainer;
  readonly context: PluginContext;
  private readonly abort = new AbortController();
  private readonly disposers: Array<() => void | Promise<void>> = [];

  constructor(
    readonly manifest: PluginManifest,
    private readonly definition: PluginDefinition<Record<string, unknown>, Record<string, ServiceRef<unknown>>>,
    config: Record<string, unknown>,
    deps: ActivationDeps,
    /** What the plugin keeps across its reloads (`keep`): the host holds it per plugin id. */
    kept: Map<string, unknown> = new Map(),
  ) {
    this.container = deps.container.createChildContainer();
    const logger = deps.logger.child({ plugin: manifest.id, pluginVersion: manifest.version });
    const names = new Set<string>();
    const staged = this.staged;
    this.context = Object.freeze({
      id: manifest.id,
      version: manifest.version,
      config: Object.freeze(structuredClone(config)),
      logger,
      events: deps.events,
      container: this.container,
      signal: this.abort.signal,
      serving: deps.serving,
      contribute<T>(point: ExtensionPointRef<T>, value: T, options: ContributeOptions = {}): Contribution<T> {
        const ownName = (value as { name?: unknown } | null)?.name;
        const unnamed = [...names].filter((k) => k.startsWith(`${point.id}/`)).length;
        const name = options.name ?? (typeof ownName === 'string' ? ownName : `${manifest.id}:${point.id}:${unnamed}`);
        const key = `${point.id}/${name}`;
        if (names.has(key))
          throw new Error(
            `plugin ${manifest.id} contributed "${name}" to ${point.id} twice; give each a distinct name`,
          );
        names.add(key);
        const contribution: Contribution<T> = Object.freeze({
          value,
          name,
          priority: options.priority ?? 0,
          pluginId: manifest.id,
          pluginVersion: manifest.version,
        });
        staged.push({ pointId: point.id, contribution });
        return contribution;
      },
      extensionPoint: <T>(point: ExtensionPointRef<T>) => deps.registry.point(point),
      configValue: (path: string) => deps.configValue(path),
      onDispose: (fn: () => void | Promise<void>) => void this.disposers.push(fn),
      keep<T>(name: string, create: () => T): T {
        if (!kept.has(name)) kept.set(name, create());
        return kept.get(name) as T;
      },
    });
    this.container.register(Services.context, { useValue: this.context });
  }

  /**
   * Runs the plugin's `activate` with the services it declared; its contributions stay staged until the host commits
   * them.
   */
  async activate(): Promise<void> {
    await this.definition.activate(this.context, this.#resolveDeps());
  }

  // Each declared service from the container; a required one the runtime does not offer fails the activation.
  #resolveDeps(): ResolvedDeps<Record<string, ServiceRef<unknown>>> {
    const deps: Record<string, unknown> = {};
    for (const [key, ref] of Object.entries(this.definition.deps ?? {})) {
      if (this.container.isRegistered(ref.id, true)) deps[key] = this.container.resolve(ref.id);
      else if (ref.optional) deps[key] = undefined;
      else {
        throw new Error(
          `needs the service '${ref.id}' (deps.${key}), which this runtime does not offer; a kernel without the engines offers no model services`,
        );
      }
    }
    return Object.freeze(deps) as ResolvedDeps<Record<string, ServiceRef<unknown>>>;
  }

  /**
   * Stops this activation: signals it, waits up to `drainTimeoutMs` for uses in flight, then runs
   * `deactivate` and the disposers (last registered first). Returns whether in-flight work drained. `held` lists the
   * uses the caller holds itself, which it cannot wait for.
   */
  async dispose(
    drainTimeoutMs: number,
    held: readonly unknown[] = [],
  ): Promise<{ drained: boolean; errors: string[] }> {
    this.abort.abort();
    const own = held.filter((use) => use === this.lease).length;
    const drained = await this.lease.drained(drainTimeoutMs, own);
    const errors: string[] = [];
    const steps = [() => this.definition.deactivate?.(this.context), ...this.disposers.reverse()];
    for (const step of steps) {
      try {
        await step();
      } catch (err) {
        errors.push((err as Error).message ?? String(err));
      }
    }
    await this.container.dispose();
    return { drained, errors };
  }
}
