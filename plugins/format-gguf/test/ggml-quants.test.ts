import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  dequantizeGgml,
  GgmlType,
  GgufFormatError,
  readTensorBytes,
  readTensorF32,
  SUPPORTED_GGML_TYPE_NAMES,
  SUPPORTED_GGML_TYPES,
  toBlockQuantized,
  UnsupportedTensorTypeError,
  type GgufFile,
  type GgufTensorInfo,
} from '@nucleus/plugin-format-gguf';
import { SeededRandom } from '@nucleus/sdk';
import { dequantizeMatrix, quantAt } from '@nucleus/sdk/llm';
import { float16FromBits } from '@nucleus/sdk/onnx';

// Hand-made blocks: each type's bytes written here from its ggml-common.h layout, from chosen stored values and
// sub-block scales, then read back. What toBlockQuantized must return is said independently of how it unpacks.

class Rng extends SeededRandom {
  /** A normal half (magnitude 2⁻⁸ … 2), either sign. */
  half(): number {
    return (this.int(2) << 15) | ((7 + this.int(9)) << 10) | this.int(1024);
  }
}

interface Expected {
  raw: Uint8Array;
  /** Stored (unsigned) value of each element, ggml order. */
  q: number[];
  scales: number[];
  zeroPoints: number[];
  offsets?: number[];
}

const h = float16FromBits;
const put16 = (raw: Uint8Array, at: number, v: number): void => {
  raw[at] = v & 0xff;
  raw[at + 1] = v >> 8;
};
const ints = (rng: Rng, n: number, max: number): number[] => Array.from({ length: n }, () => rng.int(max));

// Legacy blocks of 32: d (, m), then (qh,) qs with value j in the low nibble of byte j and value j+16 in its high one.
function legacy(type: number, blocks: number, rng: Rng): Expected {
  const withMin = type === GgmlType.Q4_1 || type === GgmlType.Q5_1;
  const five = type === GgmlType.Q5_0 || type === GgmlType.Q5_1;
  const size = 2 + (withMin ? 2 : 0) + (five ? 4 : 0) + 16;
  const raw = new Uint8Array(blocks * size);
  const e: Expected = { raw, q: [], scales: [], zeroPoints: [], ...(withMin && { offsets: [] }) };
  for (let b = 0; b < blocks; b++) {
    const at = b * size;
    const d = rng.half();
    put16(raw, at, d);
    e.scales.push(h(d));
    if (withMin) {
      const m = rng.half();
      put16(raw, at + 2, m);
      e.offsets!.push(h(m));
    }
    const q = ints(rng, 32, five ? 32 : 16);
    const qs = at + size - 16;
    for (let j = 0; j < 16; j++) raw[qs + j] = (q[j]! & 15) | ((q[j + 16]! & 15) << 4);
    if (five) {
      const qh = q.reduce((acc, v, j) => acc | ((v >> 4) << j), 0) >>> 0;
      for (let k = 0; k < 4; k++) raw[qs - 4 + k] = (qh >>> (8 * k)) & 0xff;
    }
    e.q.push(...q);
    e.zeroPoints.push(withMin ? 0 : five ? 16 : 8);
  }
  return e;
}

function q8_0(blocks: number, rng: Rng): Expected {
  const raw = new Uint8Array(blocks * 34);
  const e: Expected = { raw, q: [], scales: [], zeroPoints: [] };
  for (let b = 0; b < blocks; b++) {
    const d = rng.half();
    put16(raw, b * 34, d);
    e.scales.push(h(d));
    e.zeroPoints.push(128);
    for (let j = 0; j < 32; j++) {
      const v = rng.int(256) - 128; // int8
      raw[b * 34 + 2 + j] = v & 0xff;
      e.q.push(v + 128);
    }
  }
  return e;
}

// Two-bit fields of a 256-value super-block as Q2_K and Q3_K pack them: 32 bytes per 128 values, four shifts.
function twoBits(raw: Uint8Array, at: number, q: number[]): void {
  q.forEach((v, e) => {
    raw[at + 32 * (e >> 7) + (e & 31)]! |= (v & 3) << (2 * ((e >> 5) & 3));
  });
}

function kQuant(type: number, blocks: number, rng: Rng): Expected {
  const size = { [GgmlType.Q2_K]: 84, [GgmlType.Q3_K]: 110, [GgmlType.Q4_K]: 144, [GgmlType.Q5_K]: 176 }[type] ?? 210;
  const raw = new Uint8Array(blocks * size);
  const e: Expected = { raw, q: [], scales: [], zeroPoints: [] };
  const withMin = type !== GgmlType.Q3_K && type !== GgmlType.Q6_K;
  if (withMin) e.offsets = [];
  for (let b = 0; b < blocks; b++) {
    const at = b * size;
    const d = rng.half();
    const dmin = rng.half();
    if (type === GgmlType.Q2_K) {
      const q = ints(rng, 256, 4);
      twoBits(raw, at + 16, q);
      for (let s = 0; s < 16; s++) {
        const sc = rng.int(256);
        raw[at + s] = sc;
        e.scales.push(Math.fround(h(d) * (sc & 15)));
        e.offsets!.push(-Math.fround(h(dmin) * (sc >> 4)));
        e.zeroPoints.push(0);
      }
      put16(raw, at + 80, d);
      put16(raw, at + 82, dmin);
      e.q.push(...q);
    } else if (type === GgmlType.Q3_K) {
      const q = ints(rng, 256, 8);
      q.forEach((v, i) => {
        raw[at + (i & 31)]! |= (v >> 2) << (4 * (i >> 7) + ((i >> 5) & 3));
      });
      twoBits(raw, at + 32, q);
      const sc = ints(rng, 16, 64);
      for (let s = 0; s < 16; s++) {
        raw[at + 96 + (s & 7)]! |= (sc[s]! & 15) << (s < 8 ? 0 : 4);
        raw[at + 104 + (s & 3)]! |= (sc[s]! >> 4) << (2 * (s >> 2));
        e.scales.push(Math.fround(h(d) * (sc[s]! - 32)));
        e.zeroPoints.push(4);
      }
      put16(raw, at + 108, d);
      e.q.push(...q);
    } else if (type === GgmlType.Q4_K || type === GgmlType.Q5_K) {
      const five = type === GgmlType.Q5_K;
      put16(raw, at, d);
      put16(raw, at + 2, dmin);
      const sc = ints(rng, 8, 64);
      const mn = ints(rng, 8, 64);
      for (let j = 0; j < 4; j++) {
        raw[at + 4 + j] = sc[j]! | ((sc[j + 4]! >> 4) << 6);
        raw[at + 8 + j] = mn[j]! | ((mn[j + 4]! >> 4) << 6);
        raw[at + 12 + j] = (sc[j + 4]! & 15) | ((mn[j + 4]! & 15) << 4);
      }
      for (let j = 0; j < 8; j++) {
        e.scales.push(Math.fround(h(d) * sc[j]!));
        e.offsets!.push(-Math.fround(h(dmin) * mn[j]!));
        e.zeroPoints.push(0);
      }
      const q = ints(rng, 256, five ? 32 : 16);
      const qs = at + (five ? 48 : 16);
      q.forEach((v, i) => {
        raw[qs + 32 * (i >> 6) + (i & 31)]! |= (v & 15) << (i & 32 ? 4 : 0);
        if (five) raw[at + 16 + (i & 31)]! |= (v >> 4) << (i >> 5);
      });
      e.q.push(...q);
    } else {
      const q = ints(rng, 256, 64);
      q.forEach((v, i) => {
        const k = (i >> 5) & 3;
        const l = i & 31;
        raw[at + 64 * (i >> 7) + 32 * (k & 1) + l]! |= (v & 15) << (k < 2 ? 0 : 4);
        raw[at + 128 + 32 * (i >> 7) + l]! |= (v >> 4) << (2 * k);
      });
      for (let s = 0; s < 16; s++) {
        const sc = rng.int(256) - 128;
        raw[at + 192 + s] = sc & 0xff;
        e.scales.push(Math.fround(h(d) * sc));
        e.zeroPoints.push(32);
      }
      put16(raw, at + 208, d);
      e.q.push(...q);
    }
  }
  return e;
}

const CASES: { name: string; type: number; cols: number; bits: number; blockSize: number }[] = [
  { name: 'Q4_0', type: GgmlType.Q4_0, cols: 64, bits: 4, blockSize: 32 },
  { name: 'Q4_1', type: GgmlType.Q4_1, cols: 64, bits: 4, blockSize: 32 },
  { name: 'Q5_0', type: GgmlType.Q5_0, cols: 64, bits: 8, blockSize: 32 },
  { name: 'Q5_1', type: GgmlType.Q5_1, cols: 64, bits: 8, blockSize: 32 },
  { name: 'Q8_0', type: GgmlType.Q8_0, cols: 64, bits: 8, blockSize: 32 },
  { name: 'Q2_K', type: GgmlType.Q2_K, cols: 256, bits: 4, blockSize: 16 },
  { name: 'Q3_K', type: GgmlType.Q3_K, cols: 256, bits: 4, blockSize: 16 },
  { name: 'Q4_K', type: GgmlType.Q4_K, cols: 256, bits: 4, blockSize: 32 },
  { name: 'Q5_K', type: GgmlType.Q5_K, cols: 512, bits: 8, blockSize: 32 },
  { name: 'Q6_K', type: GgmlType.Q6_K, cols: 256, bits: 8, blockSize: 16 },
];

describe('format-gguf: ggml quant blocks onto the block-quantized layout', () => {
  for (const c of CASES) {
    it(`${c.name} → ${c.bits} bits in blocks of ${c.blockSize}: the stored values, scales, zero points and offsets`, () => {
      const rows = 3;
      const rng = new Rng(c.type * 7919 + 1);
      const perRow = c.cols / (c.cols < 256 ? 32 : 256);
      const e =
        c.type === GgmlType.Q8_0
          ? q8_0(rows * perRow, rng)
          : c.cols < 256
            ? legacy(c.type, rows * perRow, rng)
            : kQuant(c.type, rows * perRow, rng);
      const m = toBlockQuantized('blk.0.attn_q.weight', c.type, e.raw, rows, c.cols);
      assert.equal(m.sourceType, c.name);
      assert.deepEqual([m.rows, m.cols, m.bits, m.blockSize], [rows, c.cols, c.bits, c.blockSize]);
      const stored = Array.from({ length: rows * c.cols }, (_, i) => quantAt(m, Math.floor(i / c.cols), i % c.cols));
      assert.deepEqual(stored, e.q);
      assert.deepEqual(m.scales, Float32Array.from(e.scales));
      assert.deepEqual(Array.from(m.zeroPoints), e.zeroPoints);
      assert.deepEqual(m.offsets, e.offsets && Float32Array.from(e.offsets));
      // And the SDK's formula over them repeats ggml's float32 arithmetic exactly.
      const values = dequantizeMatrix(m);
      const ggml = dequantizeGgml(c.type, e.raw, rows * c.cols);
      assert.deepEqual(new Uint32Array(values.buffer), new Uint32Array(ggml.buffer));
    });
  }

  it('omits offsets only where adding them changes nothing, signed zeros included', () => {
    const raw = new Uint8Array(84); // one Q2_K block, every minimum 0: offsets −(dmin · 0)
    raw[16] = 0x01;
    put16(raw, 80, 0x3c00); // d = 1
    put16(raw, 82, 0x3c00); // dmin = 1: offsets are −0
    const m = toBlockQuantized('t', GgmlType.Q2_K, raw, 1, 256);
    assert.equal(m.offsets, undefined);
    assert.deepEqual([quantAt(m, 0, 0), quantAt(m, 0, 1)], [1, 0]);
    // A Q4_1 block with d = −1 and m = +0: ggml's 0 · d + m is +0, not the −0 of 0 · d.
    const q41 = new Uint8Array(20);
    put16(q41, 0, 0xbc00);
    const k = toBlockQuantized('t', GgmlType.Q4_1, q41, 1, 32);
    assert.ok(k.offsets);
    assert.ok(Object.is(dequantizeMatrix(k)[0], 0) && Object.is(dequantizeGgml(GgmlType.Q4_1, q41, 32)[0], 0));
  });

  it('says which tensor is in which unsupported type, and lists the supported ones', () => {
    for (const [type, name] of [
      [16, 'IQ2_XXS'],
      [15, 'Q8_K'],
      [9, 'Q8_1'],
      [34, 'TQ1_0'],
      [39, 'MXFP4'],
      [24, 'I8'],
      [99, 'type 99'],
    ] as const) {
      const err = (() => {
        try {
          toBlockQuantized('blk.3.ffn_up.weight', type, new Uint8Array(1024), 1, 256);
        } catch (e) {
          return e;
        }
        return assert.fail('accepted');
      })();
      assert.ok(err instanceof UnsupportedTensorTypeError);
      assert.equal(err.tensor, 'blk.3.ffn_up.weight');
      assert.equal(err.type, type);
      assert.equal(
        err.message,
        `tensor blk.3.ffn_up.weight is stored as ${name}, which cannot be read; supported types: ` +
          'F32, F16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, BF16',
      );
    }
    assert.throws(
      () => toBlockQuantized('output_norm.weight', GgmlType.F32, new Uint8Array(1024), 1, 256),
      (e: unknown) =>
        e instanceof UnsupportedTensorTypeError && /F32, which cannot be kept block-quantized/.test(e.message),
    );
    assert.deepEqual(SUPPORTED_GGML_TYPES, [0, 1, 2, 3, 6, 7, 8, 10, 11, 12, 13, 14, 30]);
    assert.equal(SUPPORTED_GGML_TYPE_NAMES.length, SUPPORTED_GGML_TYPES.length);
  });
});

describe('format-gguf: tensor bytes from the file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'format-gguf-tensors-'));
  const path = join(dir, 'data.bin');
  // 64 bytes of header stand-in, then data.
  const bytes = Uint8Array.from({ length: 64 + 14 }, (_, i) => i);
  // BF16 values written by hand: 1, −2.5, 3.140625, 2⁻¹³³ (float32 subnormal), −0, +∞, 0.10009765625.
  const bf16 = [0x3f80, 0xc020, 0x4049, 0x0001, 0x8000, 0x7f80, 0x3dcd];
  bf16.forEach((v, i) => {
    bytes[64 + 2 * i] = v & 0xff;
    bytes[64 + 2 * i + 1] = v >> 8;
  });
  writeFileSync(path, bytes);
  const file: GgufFile = {
    path,
    version: 3,
    metadata: new Map(),
    tensors: [],
    alignment: 32,
    dataOffset: 64,
    fileSize: bytes.length,
  };
  const tensor = (t: Partial<GgufTensorInfo>): GgufTensorInfo => ({
    name: 'blk.0.attn_norm.weight',
    dims: [7],
    type: GgmlType.BF16,
    offset: 64,
    elements: 7,
    ...t,
  });

  it('reads BF16 as the upper half of a float32', () => {
    assert.deepEqual(Array.from(readTensorF32(file, tensor({}))), [
      1,
      -2.5,
      3.140625,
      2 ** -133,
      -0,
      Infinity,
      0.10009765625,
    ]);
    assert.deepEqual(new Uint8Array(readTensorBytes(file, tensor({}))), bytes.subarray(64));
  });

  it('refuses a tensor outside the data, rows that do not fill blocks, and an unsupported type, naming the tensor', () => {
    assert.throws(
      () => readTensorBytes(file, tensor({ dims: [8], elements: 8 })),
      (e: unknown) =>
        e instanceof GgufFormatError && /blk\.0\.attn_norm\.weight \(16 bytes at 64\) lies outside/.test(e.message),
    );
    assert.throws(() => readTensorBytes(file, tensor({ offset: 10 })), /lies outside the data section \[64, 78\)/);
    assert.throws(
      () => readTensorBytes(file, tensor({ type: GgmlType.Q8_0, dims: [16, 2], elements: 32 })),
      /tensor blk\.0\.attn_norm\.weight: rows of 16 values do not fill Q8_0 blocks of 32/,
    );
    assert.throws(
      () => readTensorF32(file, tensor({ type: 17 })),
      (e: unknown) =>
        e instanceof UnsupportedTensorTypeError && /blk\.0\.attn_norm\.weight is stored as IQ2_XS/.test(e.message),
    );
  });
});
