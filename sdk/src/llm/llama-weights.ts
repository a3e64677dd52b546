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
}

/**
 * One decoder layer's weights, float32. Matrices are row-major `[out_features, in_features]` (y = W·x), the
 * layout PyTorch, llama2.c and GGUF all store.
 */
export interface LlamaLayerWeights {
  attnNorm: Float32Array;
  q: Float32Array;
  k: Float32Array;
  v: Float32Array;
  o: Float32Array;
  ffnNorm: Float32Array;
  gate: Float32Array;
  up: Float32Array;
  down: Float32Array;
}

/** All weights of a Llama decoder, float32, matrices `[out, in]`. */
export interface LlamaWeights {
  /** `[vocab, hidden]`. */
  tokenEmbedding: Float32Array;
  layers: LlamaLayerWeights[];
  finalNorm: Float32Array;
  /** `[vocab, hidden]`; absent when the classifier is tied to the token embedding. */
  lmHead?: Float32Array;
}

/** Throws when a weight array's length does not fit the architecture, naming the tensor. */
export function checkLlamaWeights(weights: LlamaWeights, a: LlamaArchitecture): void {
  const q = a.numHeads * a.headDim;
  const kv = a.numKvHeads * a.headDim;
  const expect = (name: string, array: Float32Array | undefined, n: number): void => {
    if (!array) throw new Error(`missing weight ${name}`);
    if (array.length !== n) throw new Error(`weight ${name} has ${array.length} values, expected ${n}`);
  };
  expect('token embedding', weights.tokenEmbedding, a.vocabSize * a.hiddenSize);
  expect('final norm', weights.finalNorm, a.hiddenSize);
  if (weights.lmHead) expect('lm head', weights.lmHead, a.vocabSize * a.hiddenSize);
  if (weights.layers.length !== a.numLayers)
    throw new Error(`${weights.layers.length} layers of weights, expected ${a.numLayers}`);
  weights.layers.forEach((l, i) => {
    expect(`layer ${i} attn norm`, l.attnNorm, a.hiddenSize);
    expect(`layer ${i} q`, l.q, q * a.hiddenSize);
    expect(`layer ${i} k`, l.k, kv * a.hiddenSize);
    expect(`layer ${i} v`, l.v, kv * a.hiddenSize);
    expect(`layer ${i} o`, l.o, a.hiddenSize * q);
    expect(`layer ${i} ffn norm`, l.ffnNorm, a.hiddenSize);
    expect(`layer ${i} gate`, l.gate, a.intermediateSize * a.hiddenSize);
    expect(`layer ${i} up`, l.up, a.intermediateSize * a.hiddenSize);
    expect(`layer ${i} down`, l.down, a.hiddenSize * a.intermediateSize);
  });
}
