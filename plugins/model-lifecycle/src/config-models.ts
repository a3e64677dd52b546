import type { Logger, ModelLoadRequest } from '@nucleus/sdk';
import type { ModelLifecycle } from './model-lifecycle.js';

/** A `models[]` entry of the config, as far as the lifecycle goes. */
export interface ConfiguredEntry {
  name: string;
  path: string;
  [setting: string]: unknown;
}

/** What changing `models` from `previous` to `next` asks for, by model name. */
export interface ModelsChange {
  load: ConfiguredEntry[];
  swap: ConfiguredEntry[];
  unload: string[];
}

/**
 * The loads, swaps and unloads that turn the served set of `previous` into `next`: a new name is loaded, a name
 * gone is unloaded, a name whose entry changed (its file or a setting) is swapped to the new entry.
 */
export function diffModels(previous: readonly ConfiguredEntry[], next: readonly ConfiguredEntry[]): ModelsChange {
  const before = new Map(previous.map((m) => [m.name, m]));
  const after = new Map(next.map((m) => [m.name, m]));
  return {
    load: next.filter((m) => !before.has(m.name)),
    swap: next.filter((m) => before.has(m.name) && JSON.stringify(before.get(m.name)) !== JSON.stringify(m)),
    unload: previous.filter((m) => !after.has(m.name)).map((m) => m.name),
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
    this.#queue = this.#queue.then(() => this.#run(change));
    return this.#queue;
  }

  async #run(change: ModelsChange): Promise<void> {
    const steps: [string, string, () => Promise<unknown>][] = [
      ...change.unload.map((name): [string, string, () => Promise<unknown>] => [
        'unload',
        name,
        () => this.lifecycle.unload(name),
      ]),
      ...change.swap.map((m): [string, string, () => Promise<unknown>] => [
        'swap',
        m.name,
        () => this.lifecycle.swap(m.name, toRequest(m)),
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
