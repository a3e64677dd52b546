// ggml's dequantize_row_* for every supported type, written in ggml's own loop order (not through the
// block-quantized unpacking), with a float32 rounding wherever ggml's C rounds: the reference the quantized
// path is checked against, and what float32 weights are read with.
import { bfloat16ToFloat, readHalf } from './ggml-half.js';
import { GgmlType, ggmlLayout } from './ggml-types.js';

const f = Math.fround;
const QK_K = 256;

/** The first `values` values of ggml type `type` stored in `raw`, as float32, bit for bit as ggml computes them. */
export function dequantizeGgml(type: number, raw: Uint8Array, values: number, tensor = 'tensor'): Float32Array {
  const { blockBytes, blockElems } = ggmlLayout(tensor, type);
  const y = new Float32Array(values);
  const nb = values / blockElems;
  const int8 = (v: number): number => (v << 24) >> 24;
  switch (type) {
    case GgmlType.F32: {
      const view = new DataView(raw.buffer, raw.byteOffset, values * 4);
      for (let i = 0; i < values; i++) y[i] = view.getFloat32(i * 4, true);
      break;
    }
    case GgmlType.F16:
      for (let i = 0; i < values; i++) y[i] = readHalf(raw, 2 * i);
      break;
    case GgmlType.BF16:
      for (let i = 0; i < values; i++) y[i] = bfloat16ToFloat(raw[2 * i]! | (raw[2 * i + 1]! << 8));
      break;
    case GgmlType.Q8_0:
      for (let i = 0; i < nb; i++) {
        const d = readHalf(raw, i * blockBytes);
        for (let j = 0; j < 32; j++) y[i * 32 + j] = int8(raw[i * blockBytes + 2 + j]!) * d;
      }
      break;
    case GgmlType.Q4_0:
    case GgmlType.Q4_1: {
      const withMin = type === GgmlType.Q4_1;
      for (let i = 0; i < nb; i++) {
        const at = i * blockBytes;
        const d = readHalf(raw, at);
        const m = withMin ? readHalf(raw, at + 2) : 0;
        const qs = at + (withMin ? 4 : 2);
        for (let j = 0; j < 16; j++) {
          const x0 = (raw[qs + j]! & 0x0f) - (withMin ? 0 : 8);
          const x1 = (raw[qs + j]! >> 4) - (withMin ? 0 : 8);
          y[i * 32 + j] = withMin ? f(x0 * d) + m : x0 * d;
          y[i * 32 + j + 16] = withMin ? f(x1 * d) + m : x1 * d;
        }
      }
      break;
    }
    case GgmlType.Q5_0:
    case GgmlType.Q5_1: {
      const withMin = type === GgmlType.Q5_1;
      for (let i = 0; i < nb; i++) {
        const at = i * blockBytes;
        const d = readHalf(raw, at);
        const m = withMin ? readHalf(raw, at + 2) : 0;
        const h = at + (withMin ? 4 : 2);
        const qh = (raw[h]! | (raw[h + 1]! << 8) | (raw[h + 2]! << 16) | (raw[h + 3]! << 24)) >>> 0;
        for (let j = 0; j < 16; j++) {
          const xh0 = ((qh >>> j) << 4) & 0x10;
          const xh1 = (qh >>> (j + 12)) & 0x10;
          const x0 = ((raw[h + 4 + j]! & 0x0f) | xh0) - (withMin ? 0 : 16);
          const x1 = ((raw[h + 4 + j]! >> 4) | xh1) - (withMin ? 0 : 16);
          y[i * 32 + j] = withMin ? f(x0 * d) + m : x0 * d;
          y[i * 32 + j + 16] = withMin ? f(x1 * d) + m : x1 * d;
        }
      }
      break;
    }
    case GgmlType.Q2_K:
      for (let i = 0, o = 0; i < nb; i++) {
        const at = i * blockBytes;
        const d = readHalf(raw, at + 80);
        const min = readHalf(raw, at + 82);
        let is = 0;
        for (let n = 0; n < QK_K; n += 128) {
          const q = at + 16 + n / 4;
          for (let shift = 0; shift < 8; shift += 2) {
            for (const part of [0, 16]) {
              const sc = raw[at + is++]!;
              const dl = f(d * (sc & 0xf));
              const ml = f(min * (sc >> 4));
              for (let l = 0; l < 16; l++) y[o++] = f(dl * ((raw[q + part + l]! >> shift) & 3)) - ml;
            }
          }
        }
      }
      break;
    case GgmlType.Q3_K:
      for (let i = 0, o = 0; i < nb; i++) {
        const at = i * blockBytes;
        const d = readHalf(raw, at + 108);
        const scales = q3kScales(raw, at + 96);
        let is = 0;
        let m = 1;
        for (let n = 0; n < QK_K; n += 128) {
          const q = at + 32 + n / 4;
          for (let shift = 0; shift < 8; shift += 2, m <<= 1) {
            for (const part of [0, 16]) {
              const dl = f(d * (scales[is++]! - 32));
              for (let l = 0; l < 16; l++) {
                const v = ((raw[q + part + l]! >> shift) & 3) - (raw[at + part + l]! & m ? 0 : 4);
                y[o++] = dl * v;
              }
            }
          }
        }
      }
      break;
    case GgmlType.Q4_K:
    case GgmlType.Q5_K: {
      const five = type === GgmlType.Q5_K;
      for (let i = 0, o = 0; i < nb; i++) {
        const at = i * blockBytes;
        const d = readHalf(raw, at);
        const min = readHalf(raw, at + 2);
        let ql = at + (five ? 48 : 16);
        let u1 = 1;
        let u2 = 2;
        for (let is = 0; is < 8; is += 2, ql += 32, u1 <<= 2, u2 <<= 2) {
          const [sc1, m1] = scaleMinK4(raw, at + 4, is);
          const [sc2, m2] = scaleMinK4(raw, at + 4, is + 1);
          const d1 = f(d * sc1);
          const d2 = f(d * sc2);
          const min1 = f(min * m1);
          const min2 = f(min * m2);
          for (let l = 0; l < 32; l++) {
            const high = five && raw[at + 16 + l]! & u1 ? 16 : 0;
            y[o++] = f(d1 * ((raw[ql + l]! & 0x0f) + high)) - min1;
          }
          for (let l = 0; l < 32; l++) {
            const high = five && raw[at + 16 + l]! & u2 ? 16 : 0;
            y[o++] = f(d2 * ((raw[ql + l]! >> 4) + high)) - min2;
          }
        }
      }
      break;
    }
    case GgmlType.Q6_K:
      for (let i = 0; i < nb; i++) {
        const at = i * blockBytes;
        const d = readHalf(raw, at + 208);
        for (let n = 0; n < 2; n++) {
          const ql = at + 64 * n;
          const qh = at + 128 + 32 * n;
          const sc = at + 192 + 8 * n;
          const out = i * QK_K + 128 * n;
          for (let l = 0; l < 32; l++) {
            const is = l >> 4;
            const q1 = ((raw[ql + l]! & 0xf) | (((raw[qh + l]! >> 0) & 3) << 4)) - 32;
            const q2 = ((raw[ql + l + 32]! & 0xf) | (((raw[qh + l]! >> 2) & 3) << 4)) - 32;
            const q3 = ((raw[ql + l]! >> 4) | (((raw[qh + l]! >> 4) & 3) << 4)) - 32;
            const q4 = ((raw[ql + l + 32]! >> 4) | (((raw[qh + l]! >> 6) & 3) << 4)) - 32;
            y[out + l] = f(d * int8(raw[sc + is]!)) * q1;
            y[out + l + 32] = f(d * int8(raw[sc + is + 2]!)) * q2;
            y[out + l + 64] = f(d * int8(raw[sc + is + 4]!)) * q3;
            y[out + l + 96] = f(d * int8(raw[sc + is + 6]!)) * q4;
          }
        }
      }
      break;
  }
  return y;
}

// ggml unpacks Q3_K's 12 scale bytes as three little-endian words with masks 0x03030303 and 0x0f0f0f0f, then
// reads the four words back as 16 bytes (like ggml, this assumes a little-endian machine).
function q3kScales(raw: Uint8Array, at: number): Int8Array {
  const word = (k: number): number =>
    (raw[at + 4 * k]! | (raw[at + 4 * k + 1]! << 8) | (raw[at + 4 * k + 2]! << 16) | (raw[at + 4 * k + 3]! << 24)) >>>
    0;
  const [a0, a1, tmp] = [word(0), word(1), word(2)];
  const k1 = 0x03030303;
  const k2 = 0x0f0f0f0f;
  const aux = new Uint32Array([
    (a0 & k2) | (((tmp >>> 0) & k1) << 4),
    (a1 & k2) | (((tmp >>> 2) & k1) << 4),
    ((a0 >>> 4) & k2) | (((tmp >>> 4) & k1) << 4),
    ((a1 >>> 4) & k2) | (((tmp >>> 6) & k1) << 4),
  ]);
  return new Int8Array(aux.buffer);
}

// ggml's get_scale_min_k4.
function scaleMinK4(raw: Uint8Array, q: number, j: number): [number, number] {
  if (j < 4) return [raw[q + j]! & 63, raw[q + j + 4]! & 63];
  return [(raw[q + j + 4]! & 0xf) | ((raw[q + j - 4]! >> 6) << 4), (raw[q + j + 4]! >> 4) | ((raw[q + j]! >> 6) << 4)];
}
