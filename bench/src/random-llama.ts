import { SeededRandom } from '@nucleus/sdk';
import type { LlamaArchitecture, LlamaWeights } from '@nucleus/sdk/llm';

/**
 * How much the layers from `from` on write into the residual stream (their attention output and down projections
 * scaled by `scale`): a stand-in for a model trained for early exit, whose first layers already predict most tokens.
 */
export interface QuietLayers {
  from: number;
  scale: number;
}

/** Llama weights of this shape drawn from one seed (scaled normals, unit norms): the same model on every run. */
export function randomLlama(a: LlamaArchitecture, quiet?: QuietLayers): LlamaWeights {
  const rng = new SeededRandom(17);
  const m = (rows: number, cols: number, scale = 1): Float32Array => rng.normals(rows * cols, scale / Math.sqrt(cols));
  const ones = (n: number): Float32Array => new Float32Array(n).fill(1);
  const q = a.numHeads * a.headDim;
  const kv = a.numKvHeads * a.headDim;
  return {
    tokenEmbedding: m(a.vocabSize, a.hiddenSize),
    finalNorm: ones(a.hiddenSize),
    layers: Array.from({ length: a.numLayers }, (_, i) => {
      const out = quiet && i >= quiet.from ? quiet.scale : 1;
      return {
        attnNorm: ones(a.hiddenSize),
        q: m(q, a.hiddenSize),
        k: m(kv, a.hiddenSize),
        v: m(kv, a.hiddenSize),
        o: m(a.hiddenSize, q, out),
        ffnNorm: ones(a.hiddenSize),
        gate: m(a.intermediateSize, a.hiddenSize),
        up: m(a.intermediateSize, a.hiddenSize),
        down: m(a.hiddenSize, a.intermediateSize, out),
      };
    }),
  };
}
