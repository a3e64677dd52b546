import { builtDecoderConfig, ensureLlamaGraphOf, type LoadedLlm } from '@nucleus/sdk/llm';
import type { Progress } from '@nucleus/sdk';
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
}

/**
 * Loads a GGUF Llama: checks everything it would need first (architecture, tensor types, RoPE scaling, tokenizer)
 * and refuses with the full list; builds the ONNX graph (dequantized to float32) into the model cache keyed by the
 * file's SHA-256, reusing it on later loads; takes the tokenizer and chat template from the metadata.
 */
export async function loadGguf(path: string, options: LoadGgufOptions): Promise<LoadedLlm> {
  const model = inspectGguf(path);
  const style = options.graphStyle ?? 'generic';
  const onnxPath = await ensureLlamaGraphOf(path, {
    cacheDir: options.cacheDir,
    ...(options.progress && { progress: options.progress }),
    kind: 'gguf',
    style,
    arch: model.arch,
    weights: (progress) => readGgufWeights(model, progress),
    ...(options.quantizedMatmul === 'int8' && { accuracyLevel: 4 as const }),
    // llama.cpp's rope type: `llama` rotates adjacent pairs (its converter permutes HF's Wq/Wk to match), `qwen2`
    // the two halves of each head.
    ropeLayout: model.ropeLayout,
    name: `gguf_${model.architecture}`,
  });
  const config = builtDecoderConfig(model.arch, style, {
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
