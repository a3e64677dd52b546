// ggml's K-quants (super-blocks of 256 values cut into sub-blocks of 16 or 32, each with its own 4-, 6- or 8-bit
// scale) unpacked onto the block-quantized layout ONNX Runtime reads, value for value. Each sub-block's scale
// and offset are the float32 products ggml's dequantize_row_q*_K computes (d · sc, dmin · m), so that
// `(q − zeroPoint) · scale + offset` in float32 repeats ggml's arithmetic step for step.
import { readHalf } from './ggml-half.js';
import { allocBlocks, type UnpackedBlocks } from './ggml-quants.js';

const QK_K = 256;

// block_q2_K { uint8 scales[16]; uint8 qs[64]; half d; half dmin }. Each half of 128 values reads 32 bytes of qs
// four times, two bits further each time; sub-block s of 16 values has scale d · (scales[s] & 15) and minimum
// dmin · (scales[s] >> 4): value = q · scale − minimum.
export function unpackQ2_K(raw: Uint8Array, blocks: number): UnpackedBlocks {
  const u = allocBlocks(blocks * QK_K, 4, 16, 0, true, 16);
  for (let b = 0; b < blocks; b++) {
    const at = b * 84;
    const d = readHalf(raw, at + 80);
    const dmin = readHalf(raw, at + 82);
    for (let s = 0; s < 16; s++) {
      const sc = raw[at + s]!;
      u.scales[b * 16 + s] = d * (sc & 0x0f);
      u.offsets![b * 16 + s] = -(dmin * (sc >> 4));
      u.minima!.steps[b * 16 + s] = sc >> 4;
    }
    u.minima!.scales[b] = dmin;
    for (let e = 0; e < QK_K; e++) {
      const half = e >> 7;
      const shift = 2 * ((e >> 5) & 3);
      u.q[b * QK_K + e] = (raw[at + 16 + 32 * half + (e & 31)]! >> shift) & 3;
    }
  }
  return u;
}

// block_q3_K { uint8 hmask[32]; uint8 qs[64]; uint8 scales[12]; half d }. The two low bits come from qs as in
// Q2_K; the third is bit (4·half + j) of hmask[e & 31], and ggml subtracts 4 where it is clear, so the stored
// value low | high << 2 with zero point 4 gives ggml's signed value. The 16 six-bit scales are packed: low four
// bits in nibbles of scales[0..7], high two bits in the bit pairs of scales[8..11]; scale = d · (sc − 32).
export function unpackQ3_K(raw: Uint8Array, blocks: number): UnpackedBlocks {
  const u = allocBlocks(blocks * QK_K, 4, 16, 4, false);
  for (let b = 0; b < blocks; b++) {
    const at = b * 110;
    const d = readHalf(raw, at + 108);
    const scales = at + 96;
    for (let s = 0; s < 16; s++) {
      const low = s < 8 ? raw[scales + s]! & 0x0f : raw[scales + s - 8]! >> 4;
      const high = (raw[scales + 8 + (s & 3)]! >> (2 * (s >> 2))) & 3;
      u.scales[b * 16 + s] = d * ((low | (high << 4)) - 32);
    }
    for (let e = 0; e < QK_K; e++) {
      const half = e >> 7;
      const j = (e >> 5) & 3;
      const low = (raw[at + 32 + 32 * half + (e & 31)]! >> (2 * j)) & 3;
      const high = (raw[at + (e & 31)]! >> (4 * half + j)) & 1;
      u.q[b * QK_K + e] = low | (high << 2);
    }
  }
  return u;
}

// block_q4_K { half d; half dmin; uint8 scales[12]; uint8 qs[128] }: eight sub-blocks of 32; each 64 values
// read 32 bytes of qs, low nibbles then high ones. value = q · (d · sc) − dmin · m.
export function unpackQ4_K(raw: Uint8Array, blocks: number): UnpackedBlocks {
  const u = allocBlocks(blocks * QK_K, 4, 32, 0, true, 8);
  for (let b = 0; b < blocks; b++) {
    const at = b * 144;
    scalesAndMins(raw, at, u, b);
    for (let e = 0; e < QK_K; e++) {
      const byte = raw[at + 16 + 32 * (e >> 6) + (e & 31)]!;
      u.q[b * QK_K + e] = e & 32 ? byte >> 4 : byte & 0x0f;
    }
  }
  return u;
}

// block_q5_K { half d; half dmin; uint8 scales[12]; uint8 qh[32]; uint8 qs[128] }: Q4_K's nibbles plus a fifth
// bit, bit s (the sub-block) of qh[e & 31]. Five bits are kept in 8.
export function unpackQ5_K(raw: Uint8Array, blocks: number): UnpackedBlocks {
  const u = allocBlocks(blocks * QK_K, 8, 32, 0, true, 8);
  for (let b = 0; b < blocks; b++) {
    const at = b * 176;
    scalesAndMins(raw, at, u, b);
    for (let e = 0; e < QK_K; e++) {
      const byte = raw[at + 48 + 32 * (e >> 6) + (e & 31)]!;
      const high = (raw[at + 16 + (e & 31)]! >> (e >> 5)) & 1;
      u.q[b * QK_K + e] = (e & 32 ? byte >> 4 : byte & 0x0f) | (high << 4);
    }
  }
  return u;
}

// block_q6_K { uint8 ql[128]; uint8 qh[64]; int8 scales[16]; half d }. In each half of 128 values, quarter k
// (32 values) takes the low (k < 2) or high nibble of ql[64·half + 32·(k & 1) + l] and bits 2k, 2k+1 of
// qh[32·half + l] on top; ggml subtracts 32. Sub-block s of 16 has the signed scale d · scales[s].
export function unpackQ6_K(raw: Uint8Array, blocks: number): UnpackedBlocks {
  const u = allocBlocks(blocks * QK_K, 8, 16, 32, false);
  for (let b = 0; b < blocks; b++) {
    const at = b * 210;
    const d = readHalf(raw, at + 208);
    for (let s = 0; s < 16; s++) u.scales[b * 16 + s] = d * ((raw[at + 192 + s]! << 24) >> 24);
    for (let e = 0; e < QK_K; e++) {
      const half = e >> 7;
      const k = (e >> 5) & 3;
      const l = e & 31;
      const byte = raw[at + 64 * half + 32 * (k & 1) + l]!;
      const high = (raw[at + 128 + 32 * half + l]! >> (2 * k)) & 3;
      u.q[b * QK_K + e] = (k < 2 ? byte & 0x0f : byte >> 4) | (high << 4);
    }
  }
  return u;
}

// Q4_K and Q5_K: d and dmin, then eight six-bit scales and eight six-bit minimums packed in 12 bytes
// (ggml's get_scale_min_k4). Scale d · sc and offset −(dmin · m), each rounded to float32 as ggml does.
function scalesAndMins(raw: Uint8Array, at: number, u: UnpackedBlocks, b: number): void {
  const d = readHalf(raw, at);
  const dmin = readHalf(raw, at + 2);
  const s12 = at + 4;
  for (let j = 0; j < 8; j++) {
    const sc = j < 4 ? raw[s12 + j]! & 63 : (raw[s12 + j + 4]! & 0x0f) | ((raw[s12 + j - 4]! >> 6) << 4);
    const m = j < 4 ? raw[s12 + j + 4]! & 63 : (raw[s12 + j + 4]! >> 4) | ((raw[s12 + j]! >> 6) << 4);
    u.scales[b * 8 + j] = d * sc;
    u.offsets![b * 8 + j] = -(dmin * m);
    u.minima!.steps[b * 8 + j] = m;
  }
  u.minima!.scales[b] = dmin;
}
