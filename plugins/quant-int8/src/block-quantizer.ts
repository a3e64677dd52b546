/**
 * Block quantization of a weight matrix in the layout ORT's `MatMulNBits` reads: for each output column n, blocks of
 * `blockSize` consecutive weights along the input (K) axis, each with one float scale and, when asymmetric, its own
 * zero point. 8-bit values are one a byte; 4-bit values two a byte, the even-indexed one in the low nibble.
 *
 * Symmetric 8-bit is GGUF's Q8_0 (the largest magnitude maps to ±127, stored `q + 128`), so a Q8_0 weight that was
 * dequantized to float32 comes back as its own bytes and scales. Symmetric 4-bit is Q4_0's rule (the value of largest
 * magnitude maps to −8, stored `q + 8`). Asymmetric blocks span [min(0, lo), max(0, hi)] with a zero point per block.
 */
export interface QuantizedBlocks {
  bits: 4 | 8;
  /** `[N, blocksPerColumn, blockSize · bits / 8]` bytes; a last block past K is padded with its zero point. */
  data: Uint8Array;
  /** `[N * blocksPerColumn]`, column-major by block: scale of column n, block b at `n * blocksPerColumn + b`. */
  scales: Float32Array;
  /** `[N * blocksPerColumn]` unpacked zero points; absent for symmetric blocks (the default 2^(bits−1)). */
  zeroPoints?: Uint8Array;
  blockSize: number;
  blocksPerColumn: number;
  /** True when dequantizing gives back every input weight exactly (it was already on the grid, e.g. Q8_0). */
  lossless: boolean;
  /** Largest |w − scale·(q − zp)| over the matrix. */
  maxError: number;
}

/** 8-bit symmetric blocks (the name the plugin's first version exported). */
export type Int8Blocks = QuantizedBlocks;

/** How the weights are laid out: `[K, N]` as MatMul's B (`'kn'`), or `[N, K]` as a transposed Gemm B (`'nk'`). */
export type WeightLayout = 'kn' | 'nk';

/** Bits per weight and whether blocks carry zero points. */
export interface BlockScheme {
  bits: 4 | 8;
  symmetric: boolean;
}

/** Quantizes a `K × N` weight (MatMul's B) to blocks along K; symmetric 8-bit unless `scheme` says otherwise. */
export function quantizeBlocks(
  weights: ArrayLike<number>,
  K: number,
  N: number,
  blockSize: number,
  layout: WeightLayout = 'kn',
  scheme: BlockScheme = { bits: 8, symmetric: true },
): QuantizedBlocks {
  if (weights.length !== K * N) throw new Error(`weight has ${weights.length} values, expected ${K} × ${N}`);
  const { bits, symmetric } = scheme;
  const top = (1 << bits) - 1;
  const mid = 1 << (bits - 1);
  const blocksPerColumn = Math.ceil(K / blockSize);
  const count = N * blocksPerColumn;
  const values = new Uint8Array(count * blockSize);
  const scales = new Float32Array(count);
  const zeroPoints = symmetric ? undefined : new Uint8Array(count);
  const at =
    layout === 'kn'
      ? (k: number, n: number): number => weights[k * N + n]!
      : (k: number, n: number): number => weights[n * K + k]!;
  let maxError = 0;
  for (let n = 0; n < N; n++) {
    for (let b = 0; b < blocksPerColumn; b++) {
      const block = n * blocksPerColumn + b;
      const start = b * blockSize;
      const end = Math.min(K, start + blockSize);
      let scale: number;
      let zero = mid;
      let lo = -mid;
      let hi = mid - 1;
      if (symmetric && bits === 8) {
        // Q8_0's rule: the largest magnitude maps to ±127.
        let amax = 0;
        for (let k = start; k < end; k++) amax = Math.max(amax, Math.abs(at(k, n)));
        scale = Math.fround(amax / 127);
        lo = -127;
      } else if (symmetric) {
        // Q4_0's rule: the value of largest magnitude lands exactly on −8, so the scale may be negative.
        let extreme = 0;
        for (let k = start; k < end; k++) if (Math.abs(at(k, n)) > Math.abs(extreme)) extreme = at(k, n);
        scale = Math.fround(extreme / -8);
      } else {
        let min = 0;
        let max = 0;
        for (let k = start; k < end; k++) {
          min = Math.min(min, at(k, n));
          max = Math.max(max, at(k, n));
        }
        scale = Math.fround((max - min) / top);
        zero = scale === 0 ? 0 : Math.min(top, Math.max(0, Math.round(-min / scale)));
        lo = -zero;
        hi = top - zero;
      }
      scales[block] = scale;
      if (zeroPoints) zeroPoints[block] = zero;
      const base = block * blockSize - start;
      for (let k = start; k < end; k++) {
        const w = at(k, n);
        const x = scale === 0 ? 0 : w / scale;
        // Round half away from zero, as llama.cpp's roundf does.
        const q = Math.max(lo, Math.min(hi, Math.sign(x) * Math.round(Math.abs(x))));
        values[base + k] = q + zero;
        const err = Math.abs(Math.fround(q * scale) - w);
        if (err > maxError) maxError = err;
      }
      for (let k = end; k < start + blockSize; k++) values[base + k] = zero;
    }
  }
  const data = bits === 8 ? values : packNibbles(values);
  return {
    bits,
    data,
    scales,
    ...(zeroPoints && { zeroPoints }),
    blockSize,
    blocksPerColumn,
    lossless: maxError === 0,
    maxError,
  };
}

/** The float weights `quantizeBlocks` stands for, `[K, N]` row-major: what MatMulNBits multiplies by. */
export function dequantizeBlocks(blocks: QuantizedBlocks, K: number, N: number): Float32Array {
  const out = new Float32Array(K * N);
  const { data, scales, blockSize, blocksPerColumn, zeroPoints } = blocks;
  const bits = blocks.bits ?? 8;
  const mid = 1 << (bits - 1);
  const valueAt = (i: number): number => (bits === 8 ? data[i]! : (data[i >> 1]! >> (4 * (i & 1))) & 0x0f);
  for (let n = 0; n < N; n++) {
    for (let k = 0; k < K; k++) {
      const block = n * blocksPerColumn + Math.floor(k / blockSize);
      const zero = zeroPoints ? zeroPoints[block]! : mid;
      out[k * N + n] = (valueAt(block * blockSize + (k % blockSize)) - zero) * scales[block]!;
    }
  }
  return out;
}

/** Unsigned 4-bit values, two a byte, the even-indexed one in the low nibble. */
export function packNibbles(values: Uint8Array): Uint8Array {
  const out = new Uint8Array(Math.ceil(values.length / 2));
  for (let i = 0; i < values.length; i++) out[i >> 1]! |= (values[i]! & 0x0f) << (4 * (i & 1));
  return out;
}

/** MatMulNBits' 4-bit zero points: per column, two blocks a byte, the even block in the low nibble. */
export function packZeroPoints4(zeroPoints: Uint8Array, N: number, blocksPerColumn: number): Uint8Array {
  const perColumn = Math.ceil(blocksPerColumn / 2);
  const out = new Uint8Array(N * perColumn);
  for (let n = 0; n < N; n++)
    for (let b = 0; b < blocksPerColumn; b++)
      out[n * perColumn + (b >> 1)]! |= (zeroPoints[n * blocksPerColumn + b]! & 0x0f) << (4 * (b & 1));
  return out;
}

/**
 * The block size to use for an input width K: the configured one, or the smallest power of two ≥ 16 that holds K when
 * K is smaller.
 */
export function blockSizeFor(K: number, configured: number): number {
  let size = 16;
  while (size < K && size < configured) size *= 2;
  return Math.min(size, configured);
}
