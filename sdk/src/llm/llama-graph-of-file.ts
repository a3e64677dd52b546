import { createHash } from 'node:crypto';
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
  /**
   * The files the weights come from when `path` is a folder (a checkpoint's config and shards): the key hashes each
   * one's SHA-256 instead of `path`'s.
   */
  inputs?: readonly string[];
  /** What else makes the graph differ for the same files (a quantization applied at load), added to the key. */
  variant?: string;
  /**
   * Build only the first this many layers, then the final norm and the head (an early-exit graph: a self-speculation
   * draft of the same model); default all.
   */
  layers?: number;
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
  const { cacheDir, kind, style } = options;
  const arch = earlyExit(options.arch, options.layers);
  const progress = options.progress ?? (() => noProgress);
  const sha = options.inputs
    ? await sha256OfFiles(options.inputs, cacheDir, progress)
    : await sha256FileCached(path, cacheDir, progress());
  const accuracy = options.accuracyLevel ? `-a${options.accuracyLevel}` : '';
  const variant = options.variant ? `-${options.variant}` : '';
  const layers = arch.numLayers < options.arch.numLayers ? `-l${arch.numLayers}` : '';
  const key = `${sha}-${style}${variant}${layers}${accuracy}-r${LLAMA_GRAPH_REVISION}`;
  const { path: onnxPath } = await ensureGeneratedGraph(cacheDir, kind, key, () => {
    // Two steps the caller sees: the weights read (the reader counts its bytes), then the graph built.
    const reading = progress();
    let weights: LlamaWeights;
    try {
      weights = options.weights(reading);
      if (weights.layers.length > arch.numLayers)
        weights = { ...weights, layers: weights.layers.slice(0, arch.numLayers) };
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

// One hash for several files: the SHA-256 of their names and hashes, in the order given.
async function sha256OfFiles(files: readonly string[], cacheDir: string, progress: () => Progress): Promise<string> {
  const hash = createHash('sha256');
  for (const file of files)
    hash.update(`${basename(file)}\u0000${await sha256FileCached(file, cacheDir, progress())}\n`);
  return hash.digest('hex');
}

/** The architecture of a graph of the first `layers` layers (all when undefined or not fewer). */
export function earlyExit(arch: LlamaArchitecture, layers: number | undefined): LlamaArchitecture {
  if (layers === undefined || layers >= arch.numLayers) return arch;
  if (!Number.isInteger(layers) || layers < 1)
    throw new Error(`an early-exit graph needs a whole number of layers of at least 1, got ${layers}`);
  return { ...arch, numLayers: layers };
}
