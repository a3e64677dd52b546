import { basename } from 'node:path';
import { noProgress, type Progress } from '@nucleus/sdk';
import { sliceRows, type LlamaLayerWeights, type LlamaWeights, type WeightMatrix } from '@nucleus/sdk/llm';
import type { GgufLlama } from './gguf-architecture.js';
import type { GgufTensorInfo } from './gguf-reader.js';
import { BLOCK_QUANTIZED_GGML_TYPES } from './ggml-types.js';
import { readTensorBytes, readTensorF32, toBlockQuantized } from './gguf-tensors.js';

/**
 * Reads the weights of a checked GGUF model, one tensor at a time (never the whole file at once): matrices `[out, in]`
 * as stored, norms and biases float32; Phi-3's stacked q/k/v and gate/up rows split apart. `progress` counts the
 * tensor bytes read. `context` is the context the model serves, which picks Phi-3's LongRoPE factors.
 */
export function readGgufWeights(
  model: GgufLlama,
  progress: Progress = noProgress,
  context = model.arch.maxPositions,
): LlamaWeights {
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
    const H = a.hiddenSize;
    const qkv = byName.has(`${p}.attn_qkv.weight`) ? matrix(`${p}.attn_qkv.weight`) : undefined;
    const qRows = a.numHeads * a.headDim;
    const kvRows = a.numKvHeads * a.headDim;
    // Stacked as llama.cpp views them: q rows, then k, then v.
    const attention = qkv
      ? {
          q: sliceRows(qkv, H, 0, qRows),
          k: sliceRows(qkv, H, qRows, kvRows),
          v: sliceRows(qkv, H, qRows + kvRows, kvRows),
        }
      : { q: matrix(`${p}.attn_q.weight`), k: matrix(`${p}.attn_k.weight`), v: matrix(`${p}.attn_v.weight`) };
    const attnNorm = vector(`${p}.attn_norm.weight`);
    const o = matrix(`${p}.attn_output.weight`);
    const ffnNorm = vector(`${p}.ffn_norm.weight`);
    let gate: WeightMatrix;
    let up: WeightMatrix;
    if (byName.has(`${p}.ffn_gate.weight`)) {
      gate = matrix(`${p}.ffn_gate.weight`);
      up = matrix(`${p}.ffn_up.weight`);
    } else {
      // ggml's SwiGLU of one matrix: silu of the first half of its rows times the second half.
      const gateUp = matrix(`${p}.ffn_up.weight`);
      gate = sliceRows(gateUp, H, 0, a.intermediateSize);
      up = sliceRows(gateUp, H, a.intermediateSize, a.intermediateSize);
    }
    const layer: LlamaLayerWeights = {
      attnNorm,
      ...attention,
      o,
      ffnNorm,
      gate,
      up,
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
  // LongRoPE: llama.cpp takes the long factors when the context it serves exceeds the original one.
  const longRope =
    model.longRopeAbove === undefined
      ? undefined
      : context > model.longRopeAbove
        ? 'rope_factors_long.weight'
        : 'rope_factors_short.weight';
  const factors = ropeFreqFactors(optionalVector(longRope ?? 'rope_freqs.weight'), model.ropeScale, a.headDim / 2);
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
