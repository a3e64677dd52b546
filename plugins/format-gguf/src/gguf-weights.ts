import { basename } from 'node:path';
import { noProgress, type Progress } from '@nucleus/sdk';
import type { LlamaLayerWeights, LlamaWeights, WeightMatrix } from '@nucleus/sdk/llm';
import type { GgufLlama } from './gguf-architecture.js';
import type { GgufTensorInfo } from './gguf-reader.js';
import { BLOCK_QUANTIZED_GGML_TYPES } from './ggml-types.js';
import { readTensorBytes, readTensorF32, toBlockQuantized } from './gguf-tensors.js';

/**
 * Reads the weights of a checked GGUF model, one tensor at a time (never the whole file at once): matrices `[out, in]`
 * as stored, norms and biases float32. `progress` counts the tensor bytes read.
 */
export function readGgufWeights(model: GgufLlama, progress: Progress = noProgress): LlamaWeights {
  const { file, arch: a } = model;
  const byName = new Map(file.tensors.map((t) => [t.name, t]));
  const dataBytes = file.fileSize - file.dataOffset;
  progress.start(dataBytes, `reading ${file.tensors.length} tensors of ${basename(file.path)}`, 'bytes');
  const spans = tensorSpans(file.tensors, file.fileSize);
  const tensor = (name: string): GgufTensorInfo => {
    const t = byName.get(name) as GgufTensorInfo;
    progress.advance(spans.get(name) ?? 0);
    return t;
  };
  const vector = (name: string): Float32Array => readTensorF32(file, tensor(name));
  const optionalVector = (name: string): Float32Array | undefined => (byName.has(name) ? vector(name) : undefined);
  // Quantized matrices stay as stored (MatMulNBits reads them); float ones are read as float32.
  const matrix = (name: string): WeightMatrix => {
    const t = tensor(name);
    if (!BLOCK_QUANTIZED_GGML_TYPES.includes(t.type)) return readTensorF32(file, t);
    return toBlockQuantized(name, t.type, readTensorBytes(file, t), t.dims[1]!, t.dims[0]!);
  };
  const layers: LlamaLayerWeights[] = [];
  for (let l = 0; l < a.numLayers; l++) {
    const p = `blk.${l}`;
    const layer: LlamaLayerWeights = {
      attnNorm: vector(`${p}.attn_norm.weight`),
      q: matrix(`${p}.attn_q.weight`),
      k: matrix(`${p}.attn_k.weight`),
      v: matrix(`${p}.attn_v.weight`),
      o: matrix(`${p}.attn_output.weight`),
      ffnNorm: vector(`${p}.ffn_norm.weight`),
      gate: matrix(`${p}.ffn_gate.weight`),
      up: matrix(`${p}.ffn_up.weight`),
      down: matrix(`${p}.ffn_down.weight`),
    };
    const qBias = optionalVector(`${p}.attn_q.bias`);
    const kBias = optionalVector(`${p}.attn_k.bias`);
    const vBias = optionalVector(`${p}.attn_v.bias`);
    if (qBias) layer.qBias = qBias;
    if (kBias) layer.kBias = kBias;
    if (vBias) layer.vBias = vBias;
    layers.push(layer);
  }
  const weights: LlamaWeights = {
    tokenEmbedding: matrix('token_embd.weight'),
    layers,
    finalNorm: vector('output_norm.weight'),
  };
  if (byName.has('output.weight')) weights.lmHead = matrix('output.weight');
  const factors = ropeFreqFactors(optionalVector('rope_freqs.weight'), model.ropeScale, a.headDim / 2);
  if (factors) weights.ropeFreqFactors = factors;
  progress.done();
  return weights;
}

// Bytes from each tensor's offset to the next one's (padding included), so the spans add up to the data section.
function tensorSpans(tensors: readonly GgufTensorInfo[], fileSize: number): Map<string, number> {
  const sorted = [...tensors].sort((x, y) => x.offset - y.offset);
  return new Map(sorted.map((t, i) => [t.name, (sorted[i + 1]?.offset ?? fileSize) - t.offset]));
}

// llama.cpp divides each frequency by `rope_freqs[i]` and multiplies by 1/factor of linear scaling.
function ropeFreqFactors(freqs: Float32Array | undefined, scale: number, pairs: number): Float32Array | undefined {
  if (!freqs && scale === 1) return undefined;
  const out = freqs ? Float32Array.from(freqs) : new Float32Array(pairs).fill(1);
  if (scale !== 1) for (let i = 0; i < out.length; i++) out[i] = Math.fround(out[i]! * scale);
  return out;
}
