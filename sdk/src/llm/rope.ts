/** How RoPE pairs the dims of a head: `(2i, 2i+1)` (llama2.c, GGUF `llama`) or `(i, i + d/2)` (Hugging Face). */
export type RopeLayout = 'interleaved' | 'half';

/**
 * cos/sin tables `[positions, headDim/2]` with the float32 rounding of llama2.c's `run.c`
 * (`freq = 1/powf(theta, 2i/d)`, `val = pos·freq`, `cosf(val)`), so greedy outputs match its reference bit for bit
 * wherever the math allows. `freqFactors` divide each pair's frequency (Llama 3.1+ scaling, GGUF `rope_freqs`, or a
 * linear scaling factor for every pair), as llama.cpp applies them.
 */
export function ropeTables(
  positions: number,
  headDim: number,
  theta: number,
  freqFactors?: Float32Array,
): { cos: Float32Array; sin: Float32Array } {
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
