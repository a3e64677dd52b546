import type { WorkerIsolation } from './worker-handle.js';

/** Where a model's workers run: its `models[].isolation` when the config names it, else `workers.isolation`. */
export function isolationFor(config: { get(path: string): unknown }, modelName: string): WorkerIsolation {
  const models = (config.get('models') as { name: string; isolation?: WorkerIsolation }[] | undefined) ?? [];
  return (
    models.find((m) => m.name === modelName)?.isolation ??
    (config.get('workers.isolation') as WorkerIsolation | undefined) ??
    'thread'
  );
}

/** How many replicas of a model run: its `models[].workers` when the config names it, else `workers.perModel`. */
export function replicasFor(config: { get(path: string): unknown }, modelName: string): number {
  const models = (config.get('models') as { name: string; workers?: number }[] | undefined) ?? [];
  return (
    models.find((m) => m.name === modelName)?.workers ?? (config.get('workers.perModel') as number | undefined) ?? 1
  );
}
