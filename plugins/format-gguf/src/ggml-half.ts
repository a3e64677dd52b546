// The 16-bit floats of GGUF files: IEEE half (F16 tensors, every quant block's scales) and bfloat16.

import { bfloat16FromBits, float16FromBits } from '@nucleus/sdk/onnx';

/** IEEE half → number (exact). */
export const halfToFloat: (bits: number) => number = float16FromBits;

/** bfloat16 → number (exact): the upper half of a float32. */
export const bfloat16ToFloat: (bits: number) => number = bfloat16FromBits;

// Every block of every quant type starts from halves; a table makes a 100-million-value tensor cheap to convert.
let table: Float32Array | undefined;

/** The half stored little-endian at `bytes[at]`, as a number (exact). */
export function readHalf(bytes: Uint8Array, at: number): number {
  if (!table) {
    table = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) table[h] = halfToFloat(h);
  }
  return table[bytes[at]! | (bytes[at + 1]! << 8)]!;
}
