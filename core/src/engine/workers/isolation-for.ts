import { readdirSync, statSync } from 'node:fs';
import { basename, dirname, extname, join } from 'node:path';
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

/** A model version about to open (a tensor model, or an LLM's or embedding model's graph), as {@link sharesThread} judges it. */
export interface ThreadCandidate {
  name: string;
  modelPath: string;
  isolation: WorkerIsolation;
  replicas: number;
}

/**
 * Whether a model version runs in the worker thread small models of its kind share (tensor models one, LLMs and
 * embedding models another): never with process isolation or several replicas (they exist to run apart); else as
 * its `models[].worker` says, else when its weights are under `workers.shareBelowBytes`.
 */
export function sharesThread(config: Pick<ConfigReader, 'get'>, model: ThreadCandidate): boolean {
  if (model.isolation !== 'thread' || model.replicas > 1) return false;
  const chosen = config.get('models').find((m) => m.name === model.name)?.worker;
  if (chosen !== undefined) return chosen === 'shared';
  const limit = config.get('workers.shareBelowBytes');
  return limit > 0 && weightBytes(model.modelPath) < limit;
}

// Metadata beside a model, not weights.
const METADATA = new Set(['.json', '.md', '.txt']);

/**
 * The model file and the other files in its folder, where external weights (`model.onnx.data`, …) live; metadata
 * aside. A model kept in a folder with others counts them too, which errs towards a thread of its own.
 */
function weightBytes(modelPath: string): number {
  try {
    const dir = dirname(modelPath);
    let bytes = statSync(modelPath).size;
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      if (!entry.isFile() || entry.name === basename(modelPath) || METADATA.has(extname(entry.name))) continue;
      bytes += statSync(join(dir, entry.name)).size;
    }
    return bytes;
  } catch {
    // Unreadable here (the session will say why): no reason to share.
    return Number.POSITIVE_INFINITY;
  }
}
