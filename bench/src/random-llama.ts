import { SeededRandom } from '@nucleus/sdk';
import type { LlamaArchitecture, LlamaWeights } from '@nucleus/sdk/llm';

/** Llama weights of this shape drawn from one seed (scaled normals, unit norms): the same model on every run. */
export function randomLlama(a: LlamaArchitecture): LlamaWeights {
  const rng = new SeededRandom(17);
  const m = (rows: number, cols: number): Float32Array => rng.normals(rows * cols, 1 / Math.sqrt(cols));
  const ones = (n: number): Float32Array => new Float32Array(n).fill(1);
  const q = a.numHeads * a.headDim;
  const kv = a.numKvHeads * a.headDim;
  return {
    tokenEmbedding: m(a.vocabSize, a.hiddenSize),
    finalNorm: ones(a.hiddenSize),
    layers: Array.from({ length: a.numLayers }, () => ({
      attnNorm: ones(a.hiddenSize),
      q: m(q, a.hiddenSize),
      k: m(kv, a.hiddenSize),
      v: m(kv, a.hiddenSize),
      o: m(a.hiddenSize, q),
      ffnNorm: ones(a.hiddenSize),
      gate: m(a.intermediateSize, a.hiddenSize),
      up: m(a.intermediateSize, a.hiddenSize),
      down: m(a.hiddenSize, a.intermediateSize),
    })),
  };
}
