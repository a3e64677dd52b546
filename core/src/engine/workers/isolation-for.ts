import type { WorkerIsolation } from './worker-handle.js';

/** Where a model's workers run: its `models[].isolation` when the config names it, else `workers.isolation`. */
export function isolationFor(config: { get(path: string): unknown }, modelName: string): WorkerIsolation {
  const models = (config.get('models') as { name: string; isolation?: WorkerIsolation }[] | undefined) ?? [];
  return models.find((m) => m.name === modelName)?.isolation ?? (config.get('workers.isolation') as WorkerIsolation | undefined) ?? 'thread';
}
