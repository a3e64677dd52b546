import type { ConfigReader } from '../../kernel/config/index.js';
import type { WorkerIsolation } from './worker-handle.js';

/** Where a model's workers run: its `models[].isolation` when the config names it, else `workers.isolation`. */
export function isolationFor(config: Pick<ConfigReader, 'get'>, modelName: string): WorkerIsolation {
  return config.get('models').find((m) => m.name === modelName)?.isolation ?? config.get('workers.isolation');
}

/** How many replicas of a model run: its `models[].workers` when the config names it, else `workers.perModel`. */
export function replicasFor(config: Pick<ConfigReader, 'get'>, modelName: string): number {
  return config.get('models').find((m) => m.name === modelName)?.workers ?? config.get('workers.perModel');
}
