import { basename } from 'node:path';
import { ensureGeneratedGraph, sha256FileCached } from './graph-cache.js';
import { buildLlamaGraph, LLAMA_GRAPH_REVISION, type LlamaGraphOptions } from './llama-graph.js';
import type { LlamaArchitecture, LlamaWeights } from './llama-weights.js';
import { noProgress, type Progress } from '../progress.js';

/** What {@link ensureLlamaGraphOf} builds, and where it caches it. */
export interface LlamaGraphOfFileOptions
  extends Pick<LlamaGraphOptions, 'ropeLayout' | 'style' | 'name' | 'accuracyLevel'> {
  /** The model cache; the graph goes to `<cacheDir>/<kind>/<sha256>-<style>-r<revision>/`. */
  cacheDir: string;
  /** The cache folder of the format (`gguf`, `llama2c` …). */
  kind: string;
  arch: LlamaArchitecture;
  /** Reads the weights, counting what it reads on `progress`; called only when the graph is not cached yet. */
  weights: (progress: Progress) => LlamaWeights;
  /** A new progress for each long step: hashing the file, then reading its weights and building the graph. */
  progress?: () => Progress;
}

/**
 * The ONNX Llama graph of a weight file, built once into the model cache and reused after: keyed by the file's
 * SHA-256 (remembered by path, size and mtime), the graph style and the builder's revision, and stamped with the
 * source's hash and name.
 */
export async function ensureLlamaGraphOf(path: string, options: LlamaGraphOfFileOptions): Promise<string> {
  const { cacheDir, kind, style, arch } = options;
  const progress = options.progress ?? (() => noProgress);
  const sha = await sha256FileCached(path, cacheDir, progress());
  const accuracy = options.accuracyLevel ? `-a${options.accuracyLevel}` : '';
  const key = `${sha}-${style}${accuracy}-r${LLAMA_GRAPH_REVISION}`;
  const { path: onnxPath } = await ensureGeneratedGraph(cacheDir, kind, key, () => {
    // Two steps the caller sees: the weights read (the reader counts its bytes), then the graph built.
    const reading = progress();
    let weights: LlamaWeights;
    try {
      weights = options.weights(reading);
    } finally {
      reading.done();
    }
    const steps = progress();
    steps.start(1, `building the ${style} graph of ${basename(path)}`, 'items');
    try {
      const graph = buildLlamaGraph(weights, arch, {
        ropeLayout: options.ropeLayout,
        style,
        ...(options.accuracyLevel !== undefined && { accuracyLevel: options.accuracyLevel }),
        ...(options.name !== undefined && { name: options.name }),
        metadata: { 'nucleus.source_sha256': sha, 'nucleus.source': basename(path) },
      });
      steps.advance(1);
      return graph;
    } finally {
      steps.done();
    }
  });
  return onnxPath;
}
