/** How RoPE pairs the dims of a head: `(2i, 2i+1)` (llama2.c, GGUF `llama`) or `(i, i + d/2)` (Hugging Face). */
export type RopeLayout = 'interleaved' | 'half';

/**
 * RoPE as llama.cpp's ggml computes it when a model scales it (YaRN, or a constant attention factor as Phi-3's
 * LongRoPE carries): the parameters of ggml's `rope_yarn` after llama.cpp resolved them from the file.
 */
export interface GgmlRopeScaling {
  /** 1 / `rope.scaling.factor` (1 when unscaled). */
  freqScale: number;
  /** YaRN's mix of interpolated and extrapolated angles; 0 turns YaRN off (angles interpolated by `freqScale`). */
  extFactor: number;
  /**
   * Multiplies every cos and sin (so each of q and k): llama.cpp's resolved `attn_factor`; with `extFactor ≠ 0`
   * ggml multiplies it by YaRN's `1 + 0.1·ln(1/freqScale)` itself.
   */
  attnFactor: number;
  betaFast: number;
  betaSlow: number;
  /** The context the model was trained with before scaling (`rope.scaling.original_context_length`). */
  originalContext: number;
}

/**
 * cos/sin tables `[positions, headDim/2]` with the float32 rounding of llama2.c's `run.c`
 * (`freq = 1/powf(theta, 2i/d)`, `val = pos·freq`, `cosf(val)`), so greedy outputs match its reference bit for bit
 * wherever the math allows. `freqFactors` divide each pair's frequency (Llama 3.1+ scaling, GGUF `rope_freqs`, or a
 * linear scaling factor for every pair), as llama.cpp applies them. With `scaling`, the tables are ggml's instead
 * ({@link ggmlRopeTables}).
 */
export function ropeTables(
  positions: number,
  headDim: number,
  theta: number,
  freqFactors?: Float32Array,
  scaling?: GgmlRopeScaling,
): { cos: Float32Array; sin: Float32Array } {
  if (scaling) return ggmlRopeTables(positions, headDim, theta, scaling, freqFactors);
  const half = headDim / 2;
  const freqs = new Float32Array(half);
  for (let i = 0; i < half; i++) {
    const exponent = Math.fround((2 * i) / headDim);
    const freq = Math.fround(1 / Math.fround(Math.fround(theta) ** exponent));
    freqs[i] = freqFactors ? Math.fround(freq / freqFactors[i]!) : freq;
  }
  const cos = new Float32Array(positions * half);
  const sin = new Float32Array(positions * half);
  for (let p = 0; p < positions; p++) {
    for (let i = 0; i < half; i++) {
      const angle = Math.fround(p * freqs[i]!);
      cos[p * half + i] = Math.cos(angle);
      sin[p * half + i] = Math.sin(angle);
    }
  }
  return { cos, sin };
}

/**
 * YaRN's correction range `[low, high]` of pair indices (ggml's `ggml_rope_yarn_corr_dims`): pairs below `low`
 * turn more than `betaFast` times over the original context and keep their frequency (extrapolate), pairs above
 * `high` turn fewer than `betaSlow` times and are interpolated by `freqScale`; a ramp blends the ones between.
 */
export function yarnCorrectionDims(
  headDim: number,
  originalContext: number,
  theta: number,
  betaFast: number,
  betaSlow: number,
): [number, number] {
  // Solving `turns = originalContext / (2π · theta^(2i/d))` for the pair index i.
  const dim = (turns: number): number =>
    Math.fround(
      Math.fround(headDim * Math.fround(Math.log(Math.fround(originalContext / Math.fround(turns * 2 * Math.PI))))) /
        Math.fround(2 * Math.fround(Math.log(Math.fround(theta)))),
    );
  return [Math.max(0, Math.floor(dim(betaFast))), Math.min(headDim - 1, Math.ceil(dim(betaSlow)))];
}

/**
 * ggml's RoPE cache (`ggml_rope_cache_init` with `rope_yarn`), in float32 as ggml rounds it: pair `i` at position
 * `p` extrapolates `p · base^(-2i/d)` (the power taken by repeated multiplication, as ggml does) divided by
 * `freqFactors[i]`, interpolates it by `freqScale`, blends the two by YaRN's ramp times `extFactor`, and scales cos
 * and sin by the attention factor (times `1 + 0.1·ln(1/freqScale)` when YaRN is on).
 */
export function ggmlRopeTables(
  positions: number,
  headDim: number,
  base: number,
  s: GgmlRopeScaling,
  freqFactors?: Float32Array,
): { cos: Float32Array; sin: Float32Array } {
  const f = Math.fround;
  const half = headDim / 2;
  const thetaScale = f(f(base) ** f(-2 / headDim));
  const [low, high] = yarnCorrectionDims(headDim, s.originalContext, base, s.betaFast, s.betaSlow);
  const freqScale = f(s.freqScale);
  let mscale = f(s.attnFactor);
  if (s.extFactor !== 0) mscale = f(mscale * f(1 + f(0.1 * f(Math.log(f(1 / freqScale))))));
  // The ramp is 1 below `low` (extrapolate), 0 above `high` (interpolate).
  const mix = new Float32Array(half);
  for (let i = 0; i < half; i++) {
    const y = f(f(i - low) / Math.max(0.001, f(high - low)));
    mix[i] = f(f(1 - Math.min(1, Math.max(0, y))) * f(s.extFactor));
  }
  const cos = new Float32Array(positions * half);
  const sin = new Float32Array(positions * half);
  for (let p = 0; p < positions; p++) {
    let theta = p;
    for (let i = 0; i < half; i++) {
      const extrap = freqFactors ? f(theta / freqFactors[i]!) : theta;
      const interp = f(freqScale * extrap);
      const angle = s.extFactor === 0 ? interp : f(f(interp * f(1 - mix[i]!)) + f(extrap * mix[i]!));
      cos[p * half + i] = f(f(Math.cos(angle)) * mscale);
      sin[p * half + i] = f(f(Math.sin(angle)) * mscale);
      theta = f(theta * thetaScale);
    }
  }
  return { cos, sin };
}
