import { existsSync } from 'node:fs';
import { resolve as resolvePath } from 'node:path';
import { performance } from 'node:perf_hooks';
import type { Logger, PluginManifest, PluginState } from '@nucleus/sdk';
import { ExtensionPoints, isPluginDefinition, KERNEL_API_VERSION, NucleusError, notFound } from '@nucleus/sdk';
import semver from 'semver';
import type { ActivationDeps } from './plugin-activation.js';
import { PluginActivation } from './plugin-activation.js';
import { checkProvides, checkRoutes, ContractError } from './plugin-contract.js';
import type { DiscoveredPlugin, DiscoveryOptions, PluginSource } from './plugin-discovery.js';
import { discoverPlugins, inspectPluginDir } from './plugin-discovery.js';
import { dependentsOf, resolvePlugins } from './plugin-resolver.js';
import { importFresh } from './module-loader.js';

/** Supplies each plugin's validated config section. */
export interface PluginConfigProvider {
  /** The plugin's section validated against `schema`, defaults applied; throws with the bad key named. */
  pluginConfig(id: string, schema: Record<string, unknown> | undefined): Record<string, unknown>;
}

/** The host's dependencies. */
export interface PluginHostOptions extends ActivationDeps {
  discovery: DiscoveryOptions;
  config: PluginConfigProvider;
  /** Plugin ids not to activate at start. */
  disabled: readonly string[];
  /** How long a replaced or disabled activation may take to finish its in-flight work. */
  drainTimeoutMs: number;
}

/** What the CLI and the admin API show of a plugin. */
export interface PluginInfo {
  id: string;
  version: string;
  state: PluginState;
  error?: string;
  description?: string;
  provides: string[];
  requires: Record<string, string>;
  source: PluginSource;
  dir: string;
  reloads: number;
  lastReload?: { at: string; ok: boolean; durationMs: number; error?: string };
}

interface PluginRecord {
  id: string;
  found: DiscoveredPlugin;
  state: PluginState;
  error?: string;
  /** Its last activation failed because a route it contributes is another plugin's. */
  routeConflict?: boolean;
  activation?: PluginActivation;
  reloads: number;
  lastReload?: PluginInfo['lastReload'];
}

/**
 * Discovers, validates, resolves, activates, reloads and disposes plugins. Operations on plugins
 * run one at a time, so a file-watch reload and an admin reload never interleave.
 */
export class PluginHost {
  private readonly records = new Map<string, PluginRecord>();
  /** What each plugin keeps across its reloads (`PluginContext.keep`), by plugin id; a disable drops it. */
  private readonly kept = new Map<string, Map<string, unknown>>();
  private queue: Promise<unknown> = Promise.resolve();
  private readonly log: Logger;

  constructor(private readonly options: PluginHostOptions) {
    this.log = options.logger.child({ component: 'plugin-host' });
  }

  /** Every known plugin, in id order. */
  list(): PluginInfo[] {
    return [...this.records.values()].sort((a, b) => a.id.localeCompare(b.id)).map((r) => this.info(r));
  }

  /** One plugin, or a 404 error. */
  get(id: string): PluginInfo {
    return this.info(this.record(id));
  }

  /** The folders of known plugins, for the file watcher. */
  pluginDirs(): Array<{ id: string; dir: string }> {
    return [...this.records.values()].map((r) => ({ id: r.id, dir: r.found.dir }));
  }

  /** Finds plugins and records them as discovered (or failed, with the manifest problem). */
  discover(): PluginInfo[] {
    return this.adopt(discoverPlugins(this.options.discovery));
  }

  /** Records plugins found by an earlier scan, so start-up reads the disk once. */
  adopt(found: readonly DiscoveredPlugin[]): PluginInfo[] {
    for (const f of found) this.addFound(f);
    return this.list();
  }

  /**
   * Checks kernel-API and dependency ranges of the discovered plugins: each becomes `resolved`,
   * `inactive` (disabled in config) or `failed` with the reason. Returns the activation order.
   */
  resolve(): string[] {
    const disabled = new Set(this.options.disabled);
    const candidates = [...this.records.values()].filter((r) => r.state === 'discovered');
    for (const r of candidates) {
      if (disabled.has(r.id) || r.found.manifest!.enabledByDefault === false) this.setState(r, 'inactive');
    }
    const enabled = candidates.filter((r) => r.state === 'discovered');
    const { order, problems } = resolvePlugins(
      enabled.map((r) => r.found.manifest!),
      KERNEL_API_VERSION,
    );
    for (const [id, reason] of problems) this.setState(this.record(id), 'failed', reason);
    for (const id of order) this.setState(this.record(id), 'resolved');
    return order;
  }

  /**
   * Resolves, then activates every enabled plugin in dependency order; one that throws is `failed` and the rest go on.
   */
  start(): Promise<PluginInfo[]> {
    return this.serial(async () => {
      for (const id of this.resolve()) await this.activateRecord(this.record(id));
      return this.list();
    });
  }

  /** Deactivates every active plugin, dependents first. */
  stop(): Promise<void> {
    return this.serial(async () => {
      const active = this.activeManifests();
      const { order } = resolvePlugins(active, KERNEL_API_VERSION);
      for (const id of order.reverse()) await this.deactivateRecord(this.record(id), 'inactive');
    });
  }

  /** Activates a plugin that is inactive or failed, reading its manifest again first. */
  enable(id: string): Promise<PluginInfo> {
    return this.serial(async () => {
      const r = this.record(id);
      if (r.state === 'active') return this.info(r);
      this.refresh(r);
      if (r.found.manifest) await this.activateRecord(r);
      return this.info(r);
    });
  }

  /**
   * Deactivates a plugin after its in-flight work drains; refused while active plugins require it. `held` lists the
   * uses of plugins the caller is itself inside (see `ExtensionPointView.use`): the drain does not wait for those.
   */
  disable(id: string, held: readonly unknown[] = []): Promise<PluginInfo> {
    return this.serial(async () => {
      const r = this.record(id);
      const dependents = dependentsOf(id, this.activeManifests(), this.activeIds());
      if (dependents.length) {
        throw new NucleusError(
          409,
          'plugin_has_dependents',
          `cannot disable "${id}": active plugins require it (${dependents.join(', ')}); disable them first`,
        );
      }
      if (r.state === 'active') await this.deactivateRecord(r, 'inactive', held);
      else if (r.state !== 'inactive') this.setState(r, 'inactive');
      this.kept.delete(id);
      return this.info(r);
    });
  }

  /**
   * Loads the plugin again beside the running instance, activates it in a fresh child container and
   * swaps it in at its extension points in one step; the old instance drains, then is disposed. If
   * the new one fails validation or activation the old one stays and the failure is reported (thrown).
   * Active dependents are then reloaded too, so they bind to the new instance.
   */
  reload(id: string): Promise<PluginInfo> {
    return this.serial(async () => {
      const r = this.record(id);
      if (r.state !== 'active') {
        this.refresh(r);
        if (r.found.manifest) await this.activateRecord(r);
        return this.info(r);
      }
      await this.reloadActive(r);
      for (const dep of dependentsOf(id, this.activeManifests(), this.activeIds())) {
        await this.reloadActive(this.record(dep)).catch(() => undefined);
      }
      return this.info(r);
    });
  }

  /** Adds a plugin folder that appeared after start (a new plugin dropped into a watched folder) and activates it. */
  addDir(dir: string, source: PluginSource): Promise<PluginInfo | undefined> {
    return this.serial(async () => {
      const known = [...this.records.values()].find((r) => r.found.dir === resolvePath(dir));
      if (known) return this.info(known);
      const r = this.addFound(inspectPluginDir(resolvePath(dir), source));
      if (r && r.state === 'discovered') await this.activateRecord(r);
      return r && this.info(r);
    });
  }

  private async reloadActive(r: PluginRecord): Promise<void> {
    const started = performance.now();
    const old = r.activation!;
    try {
      const found = inspectPluginDir(r.found.dir, r.found.source);
      if (!found.manifest) throw new Error(found.error);
      if (found.manifest.id !== r.id)
        throw new Error(
          `the manifest id changed from "${r.id}" to "${found.manifest.id}"; a reload cannot rename a plugin`,
        );
      this.checkRanges(found.manifest);
      const next = await this.instantiate(found);
      await this.activateChecked(next);
      this.options.registry.commit(old.lease, next.lease, next.staged);
      r.found = found;
      r.activation = next;
      r.reloads++;
      const durationMs = performance.now() - started;
      r.lastReload = { at: new Date().toISOString(), ok: true, durationMs };
      this.options.events.emit('plugin.reloaded', {
        id: r.id,
        fromVersion: old.manifest.version,
        toVersion: found.manifest.version,
        durationMs,
      });
      this.log.info(
        { id: r.id, from: old.manifest.version, to: found.manifest.version, durationMs: Math.round(durationMs) },
        'plugin reloaded',
      );
    } catch (err) {
      const message = (err as Error).message ?? String(err);
      r.lastReload = {
        at: new Date().toISOString(),
        ok: false,
        durationMs: performance.now() - started,
        error: message,
      };
      this.options.events.emit('plugin.reloadFailed', { id: r.id, version: old.manifest.version, error: message });
      this.log.warn({ id: r.id, error: message }, 'plugin reload failed; the running version stays');
      throw new NucleusError(
        422,
        'plugin_reload_failed',
        `reloading "${r.id}" failed, version ${old.manifest.version} keeps running: ${message}`,
      );
    }
    // Disposal of the old instance happens off the critical path: new requests already use the new one.
    void this.disposeQuietly(r.id, old);
  }

  private async disposeQuietly(id: string, activation: PluginActivation, held?: readonly unknown[]): Promise<void> {
    const { drained, errors } = await activation.dispose(this.options.drainTimeoutMs, held);
    if (!drained)
      this.log.warn(
        { id, version: activation.manifest.version },
        'old plugin instance did not drain in time; disposed anyway',
      );
    for (const error of errors) this.log.warn({ id, error }, 'plugin disposer threw');
  }

  private async activateRecord(r: PluginRecord): Promise<void> {
    const manifest = r.found.manifest!;
    try {
      this.checkRanges(manifest);
      for (const dep of Object.keys(manifest.requires ?? {})) {
        const d = this.records.get(dep);
        if (d?.state !== 'active')
          throw new Error(
            `requires plugin "${dep}", which is ${d ? d.state : 'not installed'}${d?.error ? `: ${d.error}` : ''}`,
          );
      }
      this.setState(r, 'activating');
      const activation = await this.instantiate(r.found);
      await this.activateChecked(activation);
      this.options.registry.commit(undefined, activation.lease, activation.staged);
      r.activation = activation;
      r.routeConflict = undefined;
      this.setState(r, 'active');
    } catch (err) {
      r.routeConflict = err instanceof ContractError && err.kind === 'route-conflict';
      this.setState(r, 'failed', (err as Error).message ?? String(err));
    }
  }

  /**
   * Runs `activate` and holds what it contributed to the manifest and to the routes other plugins serve; on any
   * failure the activation is disposed before its contributions were ever published.
   */
  private async activateChecked(activation: PluginActivation): Promise<void> {
    try {
      await activation.activate();
      const undeclared = checkProvides(activation.manifest, activation.staged);
      checkRoutes(activation.manifest, activation.staged, this.options.registry.point(ExtensionPoints.routes).list());
      if (undeclared.length > 0)
        this.log.warn(
          { id: activation.manifest.id, undeclared },
          'plugin contributes to kernel extension points its manifest does not declare; list them in "provides" ' +
            '(point:name, where a name also covers the group of contributions named name/…)',
        );
    } catch (err) {
      await activation.dispose(0);
      throw err;
    }
  }

  /** Why each plugin that failed at activation over a route another plugin serves failed (start-up refuses these). */
  routeConflicts(): string[] {
    return [...this.records.values()]
      .filter((r) => r.routeConflict && r.state === 'failed')
      .map((r) => `${r.id}: ${r.error}`);
  }

  private async deactivateRecord(r: PluginRecord, to: PluginState, held?: readonly unknown[]): Promise<void> {
    const activation = r.activation;
    if (!activation) return this.setState(r, to);
    this.setState(r, 'deactivating');
    this.options.registry.commit(activation.lease, undefined, []);
    r.activation = undefined;
    await this.disposeQuietly(r.id, activation, held);
    this.setState(r, to);
  }

  private async instantiate(found: DiscoveredPlugin): Promise<PluginActivation> {
    const manifest = found.manifest!;
    const entry = resolvePath(found.dir, manifest.entry);
    if (!existsSync(entry))
      throw new Error(`entry ${manifest.entry} not found in ${found.dir}: build the plugin first (npm run build)`);
    const mod = await importFresh(entry, found.dir);
    const definition = mod.default;
    if (!isPluginDefinition(definition)) {
      throw new Error(
        `entry ${manifest.entry} must default-export definePlugin({ activate(ctx) { … } }) from @nucleus/sdk`,
      );
    }
    const config = this.options.config.pluginConfig(manifest.id, manifest.configSchema);
    let kept = this.kept.get(manifest.id);
    if (!kept) this.kept.set(manifest.id, (kept = new Map()));
    return new PluginActivation(manifest, definition, config, this.options, kept);
  }

  /** Checks the kernel range, this plugin's requirements and its active dependents' ranges on it. */
  private checkRanges(manifest: PluginManifest): void {
    if (!semver.satisfies(KERNEL_API_VERSION, manifest.kernelApi)) {
      throw new Error(`needs kernel API ${manifest.kernelApi}, but this kernel provides ${KERNEL_API_VERSION}`);
    }
    for (const [dep, range] of Object.entries(manifest.requires ?? {})) {
      const version = this.records.get(dep)?.found.manifest?.version;
      if (version && !semver.satisfies(version, range, { includePrerelease: true })) {
        throw new Error(`requires plugin "${dep}" ${range}, but version ${version} is installed`);
      }
    }
    for (const other of this.activeManifests()) {
      const range = other.requires?.[manifest.id];
      if (range && !semver.satisfies(manifest.version, range, { includePrerelease: true })) {
        throw new Error(
          `version ${manifest.version} does not satisfy "${other.id}", which requires ${manifest.id} ${range}`,
        );
      }
    }
  }

  private refresh(r: PluginRecord): void {
    r.found = inspectPluginDir(r.found.dir, r.found.source);
    if (!r.found.manifest) this.setState(r, 'failed', r.found.error);
  }

  private addFound(found: DiscoveredPlugin): PluginRecord | undefined {
    const id = found.id;
    const existing = this.records.get(id);
    if (existing) {
      this.log.warn(
        { id, kept: existing.found.dir, ignored: found.dir },
        'two plugins share an id; the first found is used',
      );
      return undefined;
    }
    const r: PluginRecord = { id, found, state: 'discovered', reloads: 0 };
    this.records.set(id, r);
    if (found.error) this.setState(r, 'failed', found.error);
    return r;
  }

  private setState(r: PluginRecord, state: PluginState, error?: string): void {
    const previous = r.state;
    r.state = state;
    r.error = state === 'failed' ? error : undefined;
    if (state === 'failed') this.log.error({ id: r.id, error }, 'plugin failed');
    const version = r.found.manifest?.version ?? '0.0.0';
    this.options.events.emit('plugin.state', {
      id: r.id,
      version,
      state,
      previous,
      ...(error && state === 'failed' ? { error } : {}),
    });
  }

  private record(id: string): PluginRecord {
    const r = this.records.get(id);
    if (!r) throw notFound('plugin_not_found', `no plugin with id "${id}"; GET /admin/plugins lists them`);
    return r;
  }

  private activeManifests(): PluginManifest[] {
    return [...this.records.values()].filter((r) => r.state === 'active').map((r) => r.activation!.manifest);
  }

  private activeIds(): string[] {
    return resolvePlugins(this.activeManifests(), KERNEL_API_VERSION).order;
  }

  private info(r: PluginRecord): PluginInfo {
    const m = r.activation?.manifest ?? r.found.manifest;
    return {
      id: r.id,
      version: m?.version ?? 'unknown',
      state: r.state,
      ...(r.error ? { error: r.error } : {}),
      ...(m?.description ? { description: m.description } : {}),
      provides: m?.provides ?? [],
      requires: m?.requires ?? {},
      source: r.found.source,
      dir: r.found.dir,
      reloads: r.reloads,
      ...(r.lastReload ? { lastReload: r.lastReload } : {}),
    };
  }

  private serial<T>(op: () => Promise<T>): Promise<T> {
    const run = this.queue.then(op, op);
    this.queue = run.catch(() => undefined);
    return run;
  }
}
