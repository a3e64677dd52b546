// The 16-bit floats of GGUF files: IEEE half (F16 tensors, every quant block's scales) and bfloat16.

/** IEEE half → number (exact). */
export function halfToFloat(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exp = (bits >> 10) & 0x1f;
  const frac = bits & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 31) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

/** bfloat16 → number (exact): the upper half of a float32. */
export function bfloat16ToFloat(bits: number): number {
  BF16_VIEW[0] = (bits & 0xffff) << 16;
  return BF16_FLOAT[0]!;
}

const BF16_VIEW = new Uint32Array(1);
const BF16_FLOAT = new Float32Array(BF16_VIEW.buffer);

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
