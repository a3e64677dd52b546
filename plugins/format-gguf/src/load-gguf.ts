import { noProgress, type Progress } from '@nucleus/sdk';
import { builtDecoderConfig, earlyExit, ensureLlamaGraphOf, runBuildWorker, type LoadedLlm } from '@nucleus/sdk/llm';
import { inspectGguf } from './gguf-architecture.js';
import { readGgufWeights } from './gguf-weights.js';

/** Options for `loadGguf`. */
export interface LoadGgufOptions {
  name?: string;
  maxContext?: number;
  /** Where the generated graph is cached (`<cacheDir>/gguf/<sha256>-<style>-r<revision>/`). */
  cacheDir: string;
  graphStyle?: 'generic' | 'contrib';
  /**
   * How block-quantized weights multiply: `float32` on their dequantized values (default), or `int8` activations
   * per block as llama.cpp computes (MatMulNBits accuracy level 4).
   */
  quantizedMatmul?: 'float32' | 'int8';
  /** A new progress for each long step (hashing, building the graph). */
  progress?: () => Progress;
  /** Only the first this many layers, then the norm and head (an early-exit draft); default all. */
  layers?: number;
}

/**
 * Loads a GGUF Llama: checks everything it would need first (architecture, tensor types, RoPE scaling, tokenizer)
 * and refuses with the full list; builds the ONNX graph (weights kept as the file stores them) into the model cache
 * keyed by the file's SHA-256, reusing it on later loads; takes the tokenizer and chat template from the metadata.
 */
export async function loadGguf(path: string, options: LoadGgufOptions): Promise<LoadedLlm> {
  const model = inspectGguf(path);
  const style = options.graphStyle ?? 'generic';
  const job: GgufGraphJob = {
    path,
    cacheDir: options.cacheDir,
    style,
    ...(options.quantizedMatmul && { quantizedMatmul: options.quantizedMatmul }),
    ...(options.maxContext !== undefined && { maxContext: options.maxContext }),
    ...(options.layers !== undefined && { layers: options.layers }),
  };
  // Reading the weights and building the graph take seconds to minutes on real checkpoints: a child process does it, and gives all its memory back when it ends.
  const onnxPath = await runBuildWorker<string>(
    new URL('./gguf-graph-worker.js', import.meta.url),
    job,
    options.progress ?? (() => noProgress),
  );
  const config = builtDecoderConfig(earlyExit(model.arch, options.layers), style, {
    eosTokenIds: model.eosTokenIds,
    ...(options.maxContext !== undefined && { maxContext: options.maxContext }),
  });
  if (model.bosTokenId !== undefined) config.bosTokenId = model.bosTokenId;
  const loaded: LoadedLlm = {
    name: options.name ?? model.name,
    source: 'gguf',
    config,
    onnxPath,
    tokenizer: model.tokenizer,
  };
  if (model.chatTemplate !== undefined) loaded.chatTemplate = model.chatTemplate;
  return loaded;
}

/** What the graph worker builds: plain data, posted to the thread. */
export interface GgufGraphJob {
  path: string;
  cacheDir: string;
  style: 'generic' | 'contrib';
  quantizedMatmul?: 'float32' | 'int8';
  /** The context the model serves (it picks Phi-3's LongRoPE factors); default the file's. */
  maxContext?: number;
  /** Only the first this many layers (an early-exit draft); default all. */
  layers?: number;
}

/** The cached graph of a GGUF file, built when missing (in the calling thread; `loadGguf` calls it in a worker). */
export async function ensureGgufGraph(job: GgufGraphJob, progress: () => Progress): Promise<string> {
  const model = inspectGguf(job.path);
  const context = Math.min(model.arch.maxPositions, job.maxContext ?? Infinity);
  const longRope = model.longRopeAbove === undefined ? undefined : context > model.longRopeAbove ? 'long' : 'short';
  return ensureLlamaGraphOf(job.path, {
    cacheDir: job.cacheDir,
    progress,
    kind: 'gguf',
    style: job.style,
    arch: model.arch,
    weights: (reading) => readGgufWeights(model, reading, context),
    ...(longRope && { variant: `rope-${longRope}` }),
    ...(job.layers !== undefined && { layers: job.layers }),
    ...(job.quantizedMatmul === 'int8' && { accuracyLevel: 4 as const }),
    // llama.cpp's rope type: `llama` rotates adjacent pairs (its converter permutes HF's Wq/Wk to match), `qwen2`
    // the two halves of each head.
    ropeLayout: model.ropeLayout,
    name: `gguf_${model.architecture}`,
  });
}
