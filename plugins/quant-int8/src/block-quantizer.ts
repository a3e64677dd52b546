/**
 * 8-bit block quantization of a weight matrix in the layout ORT's `MatMulNBits` reads: for each output column n,
 * blocks of `blockSize` consecutive weights along the input (K) axis, each with one float scale and no zero point,
 * stored as unsigned bytes `q + 128` (q in [-127, 127]). GGUF's Q8_0 is the same scheme with blocks of 32 and a
 * float16 scale, so a Q8_0 weight that was dequantized to float32 comes back as its own bytes and scales.
 */
export interface Int8Blocks {
  /** `[N, blocksPerColumn, blockSize]` unsigned bytes, zero at 128; a last block past K is padded with 128. */
  data: Uint8Array;
  /** `[N * blocksPerColumn]`, column-major by block: scale of column n, block b at `n * blocksPerColumn + b`. */
  scales: Float32Array;
  blockSize: number;
  blocksPerColumn: number;
  /** True when dequantizing gives back every input weight exactly (it was already on an 8-bit grid, e.g. Q8_0). */
  lossless: boolean;
  /** Largest |w − scale·q| over the matrix. */
  maxError: number;
}

/** How the weights are laid out: `[K, N]` as MatMul's B (`'kn'`), or `[N, K]` as a transposed Gemm B (`'nk'`). */
export type WeightLayout = 'kn' | 'nk';

/** Quantizes a `K × N` weight (MatMul's B) to symmetric 8-bit blocks along K. */
export function quantizeBlocks(
  weights: ArrayLike<number>,
  K: number,
  N: number,
  blockSize: number,
  layout: WeightLayout = 'kn',
): Int8Blocks {
  if (weights.length !== K * N) throw new Error(`weight has ${weights.length} values, expected ${K} × ${N}`);
  const blocksPerColumn = Math.ceil(K / blockSize);
  const data = new Uint8Array(N * blocksPerColumn * blockSize).fill(128);
  const scales = new Float32Array(N * blocksPerColumn);
  const at =
    layout === 'kn'
      ? (k: number, n: number): number => weights[k * N + n]!
      : (k: number, n: number): number => weights[n * K + k]!;
  let maxError = 0;
  for (let n = 0; n < N; n++) {
    for (let b = 0; b < blocksPerColumn; b++) {
      const start = b * blockSize;
      const end = Math.min(K, start + blockSize);
      let amax = 0;
      for (let k = start; k < end; k++) amax = Math.max(amax, Math.abs(at(k, n)));
      // Q8_0's rule: the largest magnitude maps to ±127. An all-zero block keeps scale 0 and q 0.
      const scale = Math.fround(amax / 127);
      scales[n * blocksPerColumn + b] = scale;
      if (scale === 0) continue;
      const base = (n * blocksPerColumn + b) * blockSize - start;
      for (let k = start; k < end; k++) {
        const w = at(k, n);
        const x = w / scale;
        // Round half away from zero, as llama.cpp's roundf does.
        const q = Math.max(-127, Math.min(127, Math.sign(x) * Math.round(Math.abs(x))));
        data[base + k] = q + 128;
        const err = Math.abs(Math.fround(q * scale) - w);
        if (err > maxError) maxError = err;
      }
    }
  }
  return { data, scales, blockSize, blocksPerColumn, lossless: maxError === 0, maxError };
}

/** The float weights `quantizeBlocks` stands for, `[K, N]` row-major: what MatMulNBits multiplies by. */
export function dequantizeBlocks(blocks: Int8Blocks, K: number, N: number): Float32Array {
  const out = new Float32Array(K * N);
  const { data, scales, blockSize, blocksPerColumn } = blocks;
  for (let n = 0; n < N; n++) {
    for (let k = 0; k < K; k++) {
      const b = Math.floor(k / blockSize);
      out[k * N + n] =
        (data[(n * blocksPerColumn + b) * blockSize + (k % blockSize)]! - 128) * scales[n * blocksPerColumn + b]!;
    }
  }
  return out;
}

/** The block size to use for an input width K: the configured one, or the smallest power of two ≥ 16 that holds K when K is smaller. */
export function blockSizeFor(K: number, configured: number): number {
  let size = 16;
  while (size < K && size < configured) size *= 2;
  return Math.min(size, configured);
}
