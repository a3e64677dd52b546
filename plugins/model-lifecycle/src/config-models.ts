import type { Logger, ModelLoadRequest } from '@nucleus/sdk';
import type { ModelLifecycle } from './model-lifecycle.js';

/** A `models[]` entry of the config, as far as the lifecycle goes. */
export interface ConfiguredEntry {
  name: string;
  path: string;
  [setting: string]: unknown;
}

/** What changing `models` from `previous` to `next` asks for, by model name and version. */
export interface ModelsChange {
  load: ConfiguredEntry[];
  swap: ConfiguredEntry[];
  /** Names with no entry left. */
  unload: string[];
  /** Versions whose entry is gone while the name keeps others. */
  unloadVersions: Array<{ name: string; version: string }>;
}

// Entries are told apart by name and version: several versions of one name are served side by side.
function key(m: ConfiguredEntry): string {
  return `${m.name}\u0000${typeof m.version === 'string' ? m.version : ''}`;
}

/**
 * The loads, swaps and unloads that turn the served set of `previous` into `next`: a new name (or a new version of a
 * name) is loaded, a name gone is unloaded (a version gone, while its name keeps others, only that version), an entry
 * that changed (its file or a setting) is swapped to the new entry.
 */
export function diffModels(previous: readonly ConfiguredEntry[], next: readonly ConfiguredEntry[]): ModelsChange {
  const before = new Map(previous.map((m) => [key(m), m]));
  const after = new Map(next.map((m) => [key(m), m]));
  const names = new Set(next.map((m) => m.name));
  const gone = previous.filter((m) => !after.has(key(m)));
  return {
    load: next.filter((m) => !before.has(key(m))),
    swap: next.filter((m) => before.has(key(m)) && JSON.stringify(before.get(key(m))) !== JSON.stringify(m)),
    unload: [...new Set(gone.filter((m) => !names.has(m.name)).map((m) => m.name))],
    unloadVersions: gone
      .filter((m) => names.has(m.name) && typeof m.version === 'string')
      .map((m) => ({ name: m.name, version: m.version as string })),
  };
}

/**
 * Follows runtime changes of the config's `models` (`PATCH /admin/config`) with the lifecycle's own policy: each
 * change runs after the one before it, and one model that fails (logged, `model.failed`) does not stop the others.
 */
export class ConfigModels {
  #queue: Promise<void> = Promise.resolve();

  constructor(
    private readonly lifecycle: ModelLifecycle,
    private readonly logger: Logger,
  ) {}

  /** Queues the change from `previous` to `next`; the promise settles when it has been applied. */
  apply(previous: readonly ConfiguredEntry[], next: readonly ConfiguredEntry[]): Promise<void> {
    const change = diffModels(previous, next);
    // A name with several versions swaps the one whose entry changed; a name of one entry swaps as a whole.
    const several = new Set(
      [previous, next]
        .flatMap((list) => list.filter((m) => list.some((o) => o !== m && o.name === m.name)))
        .map((m) => m.name),
    );
    this.#queue = this.#queue.then(() => this.#run(change, several));
    return this.#queue;
  }

  async #run(change: ModelsChange, several: ReadonlySet<string>): Promise<void> {
    const steps: [string, string, () => Promise<unknown>][] = [
      ...change.unload.map((name): [string, string, () => Promise<unknown>] => [
        'unload',
        name,
        () => this.lifecycle.unload(name),
      ]),
      ...change.unloadVersions.map(({ name, version }): [string, string, () => Promise<unknown>] => [
        'unload',
        `${name}@${version}`,
        () => this.lifecycle.unload(name, undefined, version),
      ]),
      ...change.swap.map((m): [string, string, () => Promise<unknown>] => [
        'swap',
        m.name,
        () =>
          this.lifecycle.swap(m.name, {
            ...toRequest(m),
            ...(several.has(m.name) && typeof m.version === 'string' && { replaces: m.version }),
          }),
      ]),
      ...change.load.map((m): [string, string, () => Promise<unknown>] => [
        'load',
        m.name,
        () => this.lifecycle.load({ name: m.name, ...toRequest(m) }),
      ]),
    ];
    for (const [action, model, step] of steps) {
      try {
        await step();
      } catch (err) {
        this.logger.error({ model, action, err: (err as Error).message }, 'config change to models not applied');
      }
    }
  }
}

// A config entry as a load or swap request: `path` is the source; the rest are serving settings.
function toRequest(entry: ConfiguredEntry): Omit<ModelLoadRequest, 'name'> & { source: string } {
  const { name: _name, path, optional: _optional, fallback: _fallback, ...settings } = entry;
  return { source: path, ...settings } as Omit<ModelLoadRequest, 'name'> & { source: string };
}
