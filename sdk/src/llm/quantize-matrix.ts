import type { BlockQuantizedMatrix } from './block-quantized.js';

/** Values per block of {@link quantizeMatrix}: what MatMulNBits and GGUF's Q8_0/Q4_0 use. */
export const QUANTIZE_BLOCK_SIZE = 32;

/**
 * Quantizes a float32 matrix `[rows, cols]` (rows = output features) into symmetric blocks of 32 along `cols`, the
 * schemes of GGUF's Q8_0 (8 bits: the largest magnitude maps to ±127, zero point 128) and Q4_0 (4 bits: the value
 * of largest magnitude maps to −8, zero point 8), so the graph runs it with the same `MatMulNBits` and
 * `GatherBlockQuantized` nodes as a GGUF of those types. `cols` must be a multiple of 32.
 */
export function quantizeMatrix(values: Float32Array, rows: number, cols: number, bits: 4 | 8): BlockQuantizedMatrix {
  const size = QUANTIZE_BLOCK_SIZE;
  if (values.length !== rows * cols) throw new Error(`${values.length} values do not make a ${rows}×${cols} matrix`);
  if (cols % size !== 0) throw new Error(`rows of ${cols} values do not fill blocks of ${size}`);
  const blocks = rows * (cols / size);
  const data = new Uint8Array((rows * cols * bits) / 8);
  const scales = new Float32Array(blocks);
  const zero = bits === 8 ? 128 : 8;
  const zeroPoints = new Uint8Array(blocks).fill(zero);
  for (let b = 0; b < blocks; b++) {
    const start = b * size;
    // Q4_0 keeps the sign of the largest magnitude so that value lands exactly on −8; Q8_0 maps ±amax to ±127.
    let extreme = 0;
    for (let j = 0; j < size; j++) {
      const v = values[start + j]!;
      if (Math.abs(v) > Math.abs(extreme)) extreme = v;
    }
    const scale = Math.fround(bits === 8 ? Math.abs(extreme) / 127 : extreme / -8);
    scales[b] = scale;
    const inverse = scale === 0 ? 0 : 1 / scale;
    for (let j = 0; j < size; j++) {
      const x = values[start + j]! * inverse;
      // Round half away from zero, as llama.cpp's quantizers do.
      const q = Math.max(-zero, Math.min(zero - 1, Math.sign(x) * Math.round(Math.abs(x)))) + zero;
      const at = start + j;
      if (bits === 8) data[at] = q;
      else data[at >> 1]! |= at & 1 ? q << 4 : q;
    }
  }
  return {
    kind: 'block-quantized',
    rows,
    cols,
    bits,
    blockSize: size,
    data,
    scales,
    zeroPoints,
    sourceType: bits === 8 ? 'int8' : 'int4',
  };
}
