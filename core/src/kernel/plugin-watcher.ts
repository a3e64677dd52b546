import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { basename, dirname, join, relative, sep } from 'node:path';
import { performance } from 'node:perf_hooks';
import { type EventBus, type Logger, toNucleusError } from '@nucleus/sdk';
import { watch, type FSWatcher } from 'chokidar';
import type { PluginSource } from './plugin-discovery.js';
import type { PluginHost } from './plugin-host.js';

// TypeScript sources and build metadata change before the build output does; only the output matters.
const IGNORED = /(^|[/\\])(node_modules|\.git)([/\\]|$)|\.(ts|mts|cts|map|tsbuildinfo)$/;

/**
 * Watches plugin folders and reloads a plugin when its built files or manifest change, and activates
 * a plugin folder that appears in a watched folder of plugins. Changes are debounced per plugin so
 * that a build writing many files triggers one reload.
 */
export class PluginWatcher {
  private watcher?: FSWatcher;
  private readonly timers = new Map<string, NodeJS.Timeout>();

  constructor(
    private readonly host: PluginHost,
    private readonly folders: ReadonlyArray<{ dir: string; source: PluginSource }>,
    private readonly logger: Logger,
    private readonly debounceMs = 150,
    /** Where its reloads are reported as admin actions (actor `watcher`), for the audit trail. */
    private readonly events?: EventBus,
  ) {}

  /** Starts watching; resolves once the initial scan is done. */
  async start(): Promise<void> {
    const pluginDirs = this.host.pluginDirs().map((p) => p.dir);
    const roots = [...new Set([...pluginDirs, ...this.folders.map((f) => f.dir).filter(existsSync)])];
    this.watcher = watch(roots, { ignoreInitial: true, ignored: (p) => IGNORED.test(p), depth: 4 });
    this.watcher.on('all', (_event, path) => this.onChange(path));
    this.watcher.on('error', (err) => this.logger.warn({ err }, 'plugin watcher error'));
    await new Promise<void>((resolve) => this.watcher!.once('ready', () => resolve()));
  }

  /** Stops watching and drops pending reloads. */
  async stop(): Promise<void> {
    for (const timer of this.timers.values()) clearTimeout(timer);
    this.timers.clear();
    await this.watcher?.close();
  }

  private onChange(path: string): void {
    const plugin = this.host.pluginDirs().find((p) => path === p.dir || path.startsWith(p.dir + sep));
    if (plugin) return this.debounce(plugin.dir, () => this.reload(plugin.id));
    // A new folder in a folder of plugins: wait for its package.json.
    const folder = this.folders.find((f) => dirname(path) !== f.dir && path.startsWith(f.dir + sep));
    if (folder && basename(path) === 'package.json') {
      const dir = join(folder.dir, relative(folder.dir, path).split(sep)[0]!);
      this.debounce(dir, () => this.add(dir, folder.source));
    }
  }

  private debounce(key: string, fn: () => Promise<void>): void {
    clearTimeout(this.timers.get(key));
    this.timers.set(
      key,
      setTimeout(() => {
        this.timers.delete(key);
        void fn();
      }, this.debounceMs),
    );
  }

  private async reload(id: string): Promise<void> {
    const started = performance.now();
    try {
      const info = await this.host.reload(id);
      this.logger.info({ id, version: info.version, state: info.state }, 'plugin changed on disk; reloaded');
      this.audit(id, started);
    } catch (err) {
      this.logger.warn({ id, error: (err as Error).message }, 'plugin changed on disk; reload failed');
      this.audit(id, started, err);
    }
  }

  // The same line an admin's reload leaves, with the watcher as its actor: no key, no client, no request.
  private audit(id: string, started: number, err?: unknown): void {
    const failure = err === undefined ? undefined : toNucleusError(err);
    this.events?.emit('admin.action', {
      requestId: randomUUID(),
      actor: 'watcher',
      address: 'local',
      action: 'plugins.reload',
      method: 'WATCH',
      route: 'plugin folder changed',
      target: id,
      status: failure?.status ?? 200,
      outcome: failure ? 'failed' : 'ok',
      ...(failure && { errorCode: failure.code }),
      durationMs: performance.now() - started,
    });
  }

  private async add(dir: string, source: PluginSource): Promise<void> {
    const info = await this.host.addDir(dir, source);
    if (!info) return;
    this.logger.info({ id: info.id, state: info.state }, 'new plugin folder found');
    await this.watcher?.add(dir);
  }
}
