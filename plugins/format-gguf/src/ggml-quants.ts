// ggml's legacy quant types (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0: one scale per block of 32) unpacked onto the
// block-quantized layout ONNX Runtime reads, value for value; and the packing every quant type shares.
import type { BlockMinima, BlockQuantizedMatrix } from '@nucleus/sdk/llm';
import { readHalf } from './ggml-half.js';

/**
 * A quant type's blocks before packing: one stored value per byte in ggml element order, and per block of
 * `blockSize` values one scale, zero point and (for types with a minimum) offset, so that value j of block b is
 * `(q[b·blockSize + j] − zeroPoints[b]) · scales[b] + offsets[b]` in float32, exactly as ggml dequantizes it.
 */
export interface UnpackedBlocks {
  readonly bits: 4 | 8;
  readonly blockSize: 16 | 32;
  readonly q: Uint8Array;
  readonly scales: Float32Array;
  readonly zeroPoints: Uint8Array;
  readonly offsets?: Float32Array;
  /** For the K-quants: how the offsets were made, `−dmin · m` per sub-block (see `BlockMinima`). */
  readonly minima?: BlockMinima;
}

/** Room for `values` values in blocks of `blockSize`, every zero point `zeroPoint`. */
export function allocBlocks(
  values: number,
  bits: 4 | 8,
  blockSize: 16 | 32,
  zeroPoint: number,
  withOffsets: boolean,
  blocksPerMinScale?: number,
): UnpackedBlocks {
  const blocks = values / blockSize;
  return {
    bits,
    blockSize,
    q: new Uint8Array(values),
    scales: new Float32Array(blocks),
    zeroPoints: new Uint8Array(blocks).fill(zeroPoint),
    ...(withOffsets && { offsets: new Float32Array(blocks) }),
    ...(blocksPerMinScale && {
      minima: {
        blocksPerScale: blocksPerMinScale,
        scales: new Float32Array(blocks / blocksPerMinScale),
        steps: new Uint8Array(blocks),
      },
    }),
  };
}

/** The matrix `[rows, cols]` these blocks make: 4-bit values two per byte, the even-indexed one in the low nibble. */
export function packBlocks(u: UnpackedBlocks, rows: number, cols: number, sourceType: string): BlockQuantizedMatrix {
  let data = u.q;
  if (u.bits === 4) {
    data = new Uint8Array(u.q.length / 2);
    for (let i = 0; i < data.length; i++) data[i] = u.q[2 * i]! | (u.q[2 * i + 1]! << 4);
  }
  // Offsets that are all −0 change no value (x + −0 is x, also for x = −0), so the graph needs no offset path.
  const offsets = u.offsets?.every((o) => Object.is(o, -0)) ? undefined : u.offsets;
  return {
    kind: 'block-quantized',
    rows,
    cols,
    bits: u.bits,
    blockSize: u.blockSize,
    data,
    scales: u.scales,
    zeroPoints: u.zeroPoints,
    ...(offsets && { offsets }),
    ...(offsets && u.minima && { minima: u.minima }),
    sourceType,
  };
}

// ggml-common.h: block_q4_0 { half d; uint8 qs[16] }. Value j < 16 is the low nibble of qs[j], value j + 16 its
// high nibble; dequantized (q − 8) · d.
export function unpackQ4_0(raw: Uint8Array, blocks: number): UnpackedBlocks {
  const u = allocBlocks(blocks * 32, 4, 32, 8, false);
  for (let b = 0; b < blocks; b++) {
    const at = b * 18;
    u.scales[b] = readHalf(raw, at);
    nibbles(raw, at + 2, u.q, b * 32);
  }
  return u;
}

// block_q4_1 { half d; half m; uint8 qs[16] }: q · d + m.
export function unpackQ4_1(raw: Uint8Array, blocks: number): UnpackedBlocks {
  const u = allocBlocks(blocks * 32, 4, 32, 0, true);
  for (let b = 0; b < blocks; b++) {
    const at = b * 20;
    u.scales[b] = readHalf(raw, at);
    u.offsets![b] = readHalf(raw, at + 2);
    nibbles(raw, at + 4, u.q, b * 32);
  }
  return u;
}

// block_q5_0 { half d; uint8 qh[4]; uint8 qs[16] }: bit j of the little-endian qh is value j's fifth bit;
// (q − 16) · d. Five bits are kept in 8.
export function unpackQ5_0(raw: Uint8Array, blocks: number): UnpackedBlocks {
  const u = allocBlocks(blocks * 32, 8, 32, 16, false);
  for (let b = 0; b < blocks; b++) {
    const at = b * 22;
    u.scales[b] = readHalf(raw, at);
    fiveBits(raw, at + 2, u.q, b * 32);
  }
  return u;
}

// block_q5_1 { half d; half m; uint8 qh[4]; uint8 qs[16] }: q · d + m.
export function unpackQ5_1(raw: Uint8Array, blocks: number): UnpackedBlocks {
  const u = allocBlocks(blocks * 32, 8, 32, 0, true);
  for (let b = 0; b < blocks; b++) {
    const at = b * 24;
    u.scales[b] = readHalf(raw, at);
    u.offsets![b] = readHalf(raw, at + 2);
    fiveBits(raw, at + 4, u.q, b * 32);
  }
  return u;
}

// block_q8_0 { half d; int8 qs[32] }: q · d. Stored as q + 128 with zero point 128, as MatMulNBits wants.
export function unpackQ8_0(raw: Uint8Array, blocks: number): UnpackedBlocks {
  const u = allocBlocks(blocks * 32, 8, 32, 128, false);
  for (let b = 0; b < blocks; b++) {
    const at = b * 34;
    u.scales[b] = readHalf(raw, at);
    for (let j = 0; j < 32; j++) u.q[b * 32 + j] = raw[at + 2 + j]! ^ 0x80;
  }
  return u;
}

// 16 bytes → 32 values: the low nibbles first, then the high ones.
function nibbles(raw: Uint8Array, at: number, q: Uint8Array, to: number): void {
  for (let j = 0; j < 16; j++) {
    const byte = raw[at + j]!;
    q[to + j] = byte & 0x0f;
    q[to + j + 16] = byte >> 4;
  }
}

// qh (4 bytes) then 16 bytes of nibbles → 32 five-bit values.
function fiveBits(raw: Uint8Array, at: number, q: Uint8Array, to: number): void {
  const qh = (raw[at]! | (raw[at + 1]! << 8) | (raw[at + 2]! << 16) | (raw[at + 3]! << 24)) >>> 0;
  nibbles(raw, at + 4, q, to);
  for (let j = 0; j < 32; j++) q[to + j] = q[to + j]! | (((qh >>> j) & 1) << 4);
}
