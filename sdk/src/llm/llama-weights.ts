import { checkBlockQuantized, type WeightMatrix } from './block-quantized.js';
import type { GgmlRopeScaling } from './rope.js';

/** The shape facts of a Llama-family decoder that its weights and graph are built from. */
export interface LlamaArchitecture {
  vocabSize: number;
  hiddenSize: number;
  /** Width of the SwiGLU feed-forward layer. */
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  rmsNormEps: number;
  ropeTheta: number;
  /** Positions the RoPE tables cover; positions past it are out of range. */
  maxPositions: number;
  /** RoPE as ggml scales it (YaRN, an attention factor); absent: llama2.c's tables (see `ropeTables`). */
  ropeScaling?: GgmlRopeScaling;
  /** Keys a query attends to, itself included (Mistral / Phi-3 sliding window); absent: all earlier ones. */
  slidingWindow?: number;
}

/**
 * One decoder layer's weights. Matrices are `[out_features, in_features]` (y = W·x), the layout PyTorch, llama2.c
 * and GGUF all store: float32 row-major, or block-quantized as read from the file. Norms and biases are float32.
 */
export interface LlamaLayerWeights {
  attnNorm: Float32Array;
  q: WeightMatrix;
  k: WeightMatrix;
  v: WeightMatrix;
  o: WeightMatrix;
  /** Added after the projections, before RoPE (Qwen2). */
  qBias?: Float32Array;
  kBias?: Float32Array;
  vBias?: Float32Array;
  ffnNorm: Float32Array;
  gate: WeightMatrix;
  up: WeightMatrix;
  down: WeightMatrix;
}

/** All weights of a Llama decoder, matrices `[out, in]`. */
export interface LlamaWeights {
  /** `[vocab, hidden]`. */
  tokenEmbedding: WeightMatrix;
  layers: LlamaLayerWeights[];
  finalNorm: Float32Array;
  /** `[vocab, hidden]`; absent when the classifier is tied to the token embedding. */
  lmHead?: WeightMatrix;
  /**
   * `[headDim / 2]` divisors of the RoPE frequencies (Llama 3.1+ scaling as GGUF's `rope_freqs` stores it): pair `i`
   * turns by `pos · theta^(-2i/d) / ropeFreqFactors[i]`.
   */
  ropeFreqFactors?: Float32Array;
}

/** Throws when a weight array's length does not fit the architecture, naming the tensor. */
export function checkLlamaWeights(weights: LlamaWeights, a: LlamaArchitecture): void {
  const q = a.numHeads * a.headDim;
  const kv = a.numKvHeads * a.headDim;
  const expect = (name: string, array: WeightMatrix | undefined, n: number, rows?: number): void => {
    if (!array) throw new Error(`missing weight ${name}`);
    if (!(array instanceof Float32Array)) {
      checkBlockQuantized(array, `weight ${name}`);
      if (array.rows !== rows || array.rows * array.cols !== n)
        throw new Error(
          `weight ${name} is [${array.rows}, ${array.cols}], expected ${rows} rows of ${n / (rows ?? 1)}`,
        );
      return;
    }
    if (array.length !== n) throw new Error(`weight ${name} has ${array.length} values, expected ${n}`);
  };
  expect('token embedding', weights.tokenEmbedding, a.vocabSize * a.hiddenSize, a.vocabSize);
  expect('final norm', weights.finalNorm, a.hiddenSize);
  if (weights.lmHead) expect('lm head', weights.lmHead, a.vocabSize * a.hiddenSize, a.vocabSize);
  if (weights.ropeFreqFactors) expect('rope frequency factors', weights.ropeFreqFactors, a.headDim / 2);
  if (weights.layers.length !== a.numLayers)
    throw new Error(`${weights.layers.length} layers of weights, expected ${a.numLayers}`);
  weights.layers.forEach((l, i) => {
    expect(`layer ${i} attn norm`, l.attnNorm, a.hiddenSize);
    expect(`layer ${i} q`, l.q, q * a.hiddenSize, q);
    expect(`layer ${i} k`, l.k, kv * a.hiddenSize, kv);
    expect(`layer ${i} v`, l.v, kv * a.hiddenSize, kv);
    expect(`layer ${i} o`, l.o, a.hiddenSize * q, a.hiddenSize);
    if (l.qBias) expect(`layer ${i} q bias`, l.qBias, q);
    if (l.kBias) expect(`layer ${i} k bias`, l.kBias, kv);
    if (l.vBias) expect(`layer ${i} v bias`, l.vBias, kv);
    expect(`layer ${i} ffn norm`, l.ffnNorm, a.hiddenSize);
    expect(`layer ${i} gate`, l.gate, a.intermediateSize * a.hiddenSize, a.intermediateSize);
    expect(`layer ${i} up`, l.up, a.intermediateSize * a.hiddenSize, a.intermediateSize);
    expect(`layer ${i} down`, l.down, a.hiddenSize * a.intermediateSize, a.hiddenSize);
  });
}
