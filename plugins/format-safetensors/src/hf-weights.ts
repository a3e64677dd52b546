import { basename } from 'node:path';
import { noProgress, type Progress } from '@nucleus/sdk';
import {
  QUANTIZE_BLOCK_SIZE,
  quantizeMatrix,
  type LlamaLayerWeights,
  type LlamaWeights,
  type WeightMatrix,
} from '@nucleus/sdk/llm';
import type { HfLlama } from './hf-checkpoint.js';
import { readTensorF32 } from './safetensors-reader.js';

/** The quantizations a checkpoint's float weights take at load (`models[].quantize`). */
export const LOAD_QUANTIZATIONS = ['int8', 'int4'] as const;

/** One of {@link LOAD_QUANTIZATIONS}. */
export type LoadQuantization = (typeof LOAD_QUANTIZATIONS)[number];

/**
 * Reads the weights of a checked checkpoint one tensor at a time, by offset (never a whole shard at once): matrices
 * `[out, in]` as transformers stores them (q_proj and k_proj unpermuted: the graph rotates halves), norms and biases
 * float32. With `quantize`, every matrix whose rows fill blocks of 32 is quantized as it is read, so the float32 copy
 * of one matrix at a time is all that is held. `progress` counts the tensor bytes read.
 */
export function readCheckpointWeights(
  model: HfLlama,
  progress: Progress = noProgress,
  quantize?: LoadQuantization,
): LlamaWeights {
  const { checkpoint, arch: a } = model;
  const total = checkpoint.files.reduce((n, f) => n + f.fileSize, 0);
  progress.start(total, `reading ${checkpoint.tensors.size} tensors of ${basename(model.dir)}`, 'bytes');
  const vector = (name: string): Float32Array => {
    const { file, tensor } = checkpoint.tensors.get(name)!;
    progress.advance(tensor.byteLength);
    return readTensorF32(file, tensor);
  };
  const optionalVector = (name: string): Float32Array | undefined =>
    checkpoint.tensors.has(name) ? vector(name) : undefined;
  const matrix = (name: string, bits: 4 | 8 = quantize === 'int4' ? 4 : 8): WeightMatrix => {
    const values = vector(name);
    const [rows, cols] = checkpoint.tensors.get(name)!.tensor.shape as [number, number];
    if (!quantize || cols % QUANTIZE_BLOCK_SIZE !== 0) return values;
    return quantizeMatrix(values, rows, cols, bits);
  };
  const layers: LlamaLayerWeights[] = [];
  for (let l = 0; l < a.numLayers; l++) {
    const p = `model.layers.${l}`;
    const layer: LlamaLayerWeights = {
      attnNorm: vector(`${p}.input_layernorm.weight`),
      q: matrix(`${p}.self_attn.q_proj.weight`),
      k: matrix(`${p}.self_attn.k_proj.weight`),
      v: matrix(`${p}.self_attn.v_proj.weight`),
      o: matrix(`${p}.self_attn.o_proj.weight`),
      ffnNorm: vector(`${p}.post_attention_layernorm.weight`),
      gate: matrix(`${p}.mlp.gate_proj.weight`),
      up: matrix(`${p}.mlp.up_proj.weight`),
      down: matrix(`${p}.mlp.down_proj.weight`),
    };
    const qBias = optionalVector(`${p}.self_attn.q_proj.bias`);
    const kBias = optionalVector(`${p}.self_attn.k_proj.bias`);
    const vBias = optionalVector(`${p}.self_attn.v_proj.bias`);
    if (qBias) layer.qBias = qBias;
    if (kBias) layer.kBias = kBias;
    if (vBias) layer.vBias = vBias;
    layers.push(layer);
  }
  const weights: LlamaWeights = {
    // The classifier decides every token: 8 bits even for int4, as llama.cpp's Q4 mixes keep output.weight at 6.
    tokenEmbedding: matrix('model.embed_tokens.weight', 8),
    layers,
    finalNorm: vector('model.norm.weight'),
  };
  if (!model.tied) weights.lmHead = matrix('lm_head.weight', 8);
  if (model.ropeFreqFactors) weights.ropeFreqFactors = model.ropeFreqFactors;
  progress.done();
  return weights;
}
