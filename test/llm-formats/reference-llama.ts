// A plain float64 Llama forward pass, written from the model's definition (RMSNorm, RoPE, GQA, SwiGLU), to check
// the ONNX graphs against something that shares no code with them.
import { dequantizeMatrix, type WeightMatrix } from '@nucleus/sdk/llm';
import type { LlamaArchitecture, LlamaWeights } from '../helpers/llm.js';

const dense = (m: WeightMatrix): Float32Array => (m instanceof Float32Array ? m : dequantizeMatrix(m));

/** y = W·x (+ bias) with W row-major [out, in]. */
function linear(m: WeightMatrix, x: Float64Array, out: number, inDim: number, bias?: Float32Array): Float64Array {
  const w = dense(m);
  const y = new Float64Array(out);
  for (let i = 0; i < out; i++) {
    let s = 0;
    for (let j = 0; j < inDim; j++) s += w[i * inDim + j]! * x[j]!;
    y[i] = s + (bias?.[i] ?? 0);
  }
  return y;
}

function rmsNorm(x: Float64Array, weight: Float32Array, eps: number): Float64Array {
  let ss = 0;
  for (const v of x) ss += v * v;
  const inv = 1 / Math.sqrt(ss / x.length + eps);
  return x.map((v, i) => v * inv * weight[i]!);
}

// Rotates each head of `v` in place for position `pos`.
function rope(
  v: Float64Array,
  heads: number,
  d: number,
  pos: number,
  theta: number,
  layout: 'interleaved' | 'half',
  factors?: Float32Array,
): void {
  for (let h = 0; h < heads; h++) {
    for (let i = 0; i < d / 2; i++) {
      const angle = (pos * theta ** ((-2 * i) / d)) / (factors?.[i] ?? 1);
      const [a, b] = layout === 'interleaved' ? [h * d + 2 * i, h * d + 2 * i + 1] : [h * d + i, h * d + i + d / 2];
      const x0 = v[a]!;
      const x1 = v[b]!;
      v[a] = x0 * Math.cos(angle) - x1 * Math.sin(angle);
      v[b] = x0 * Math.sin(angle) + x1 * Math.cos(angle);
    }
  }
}

/** Logits [tokens.length × vocab] of one sequence starting at position 0. */
export function referenceLogits(
  w: LlamaWeights,
  a: LlamaArchitecture,
  tokens: readonly number[],
  layout: 'interleaved' | 'half',
): Float64Array[] {
  const H = a.hiddenSize;
  const D = a.headDim;
  const group = a.numHeads / a.numKvHeads;
  const keys: Float64Array[][] = Array.from({ length: a.numLayers }, () => []);
  const values: Float64Array[][] = Array.from({ length: a.numLayers }, () => []);
  const out: Float64Array[] = [];
  const embedding = dense(w.tokenEmbedding);
  tokens.forEach((token, pos) => {
    let x = Float64Array.from(embedding.subarray(token * H, (token + 1) * H));
    for (let l = 0; l < a.numLayers; l++) {
      const lw = w.layers[l]!;
      const n = rmsNorm(x, lw.attnNorm, a.rmsNormEps);
      const q = linear(lw.q, n, a.numHeads * D, H, lw.qBias);
      const k = linear(lw.k, n, a.numKvHeads * D, H, lw.kBias);
      const v = linear(lw.v, n, a.numKvHeads * D, H, lw.vBias);
      rope(q, a.numHeads, D, pos, a.ropeTheta, layout, w.ropeFreqFactors);
      rope(k, a.numKvHeads, D, pos, a.ropeTheta, layout, w.ropeFreqFactors);
      keys[l]!.push(k);
      values[l]!.push(v);
      const context = new Float64Array(a.numHeads * D);
      for (let h = 0; h < a.numHeads; h++) {
        const kvh = Math.floor(h / group);
        const scores = keys[l]!.map((kk) => {
          let s = 0;
          for (let i = 0; i < D; i++) s += q[h * D + i]! * kk[kvh * D + i]!;
          return s / Math.sqrt(D);
        });
        const max = Math.max(...scores);
        const e = scores.map((s) => Math.exp(s - max));
        const sum = e.reduce((p, c) => p + c, 0);
        e.forEach((p, t) => {
          for (let i = 0; i < D; i++) context[h * D + i]! += (p / sum) * values[l]![t]![kvh * D + i]!;
        });
      }
      const attended = linear(lw.o, context, H, a.numHeads * D);
      x = x.map((xv, i) => xv + attended[i]!);
      const m = rmsNorm(x, lw.ffnNorm, a.rmsNormEps);
      const gate = linear(lw.gate, m, a.intermediateSize, H);
      const up = linear(lw.up, m, a.intermediateSize, H);
      const act = gate.map((g, i) => (g / (1 + Math.exp(-g))) * up[i]!);
      const down = linear(lw.down, act, H, a.intermediateSize);
      x = x.map((xv, i) => xv + down[i]!);
    }
    out.push(linear(w.lmHead ?? w.tokenEmbedding, rmsNorm(x, w.finalNorm, a.rmsNormEps), a.vocabSize, H));
  });
  return out;
}
