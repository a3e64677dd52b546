// GGUF quant types kept quantized in ONNX Runtime: MatMulNBits and GatherBlockQuantized over real llama-quantize
// tensors (the oracle's quant-zoo files) against float32 MatMul and Gather over the same values dequantized.
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { GraphBuilder } from '@nucleus/sdk/onnx';
import {
  blocksPerRow,
  checkBlockQuantized,
  dequantizeMatrix,
  quantizedGather,
  quantizedLinear,
  readGguf,
  readTensorBytes,
  readTensorF32,
  sliceRows,
  toBlockQuantized,
  type BlockQuantizedMatrix,
} from '../helpers/llm.js';
import { runModel, f32, i64 } from '../onnx/ort-session.js';
import { pseudoRandom } from '../onnx/reference.js';
import { ORACLE_DIR, requireOracle } from './llm-module.js';

const TOKENS = 3;
const IDS = [0, 7, 255, 128, 31];
// Float32 sums of n terms are within n·2⁻²⁴ of their Σ|terms| (the γₙ bound); n counts every addition MatMulNBits
// or the offset correction makes on the way.
const U = 2 ** -24;

interface Measured {
  /** Max |MatMulNBits − float32 MatMul| with float activations. */
  linear: number;
  /** Of that over the bound, the largest. */
  ratio: number;
  /** Max |MatMulNBits − float32 MatMul| with int8 activations, relative to the largest output. */
  int8: number;
}

/**
 * Runs m as a projection and as a lookup table, quantized (at `accuracyLevel`) and as float32, in one model; returns
 * the outputs and how many data initializers the quantized ops stored.
 */
async function runBoth(
  m: BlockQuantizedMatrix,
  x: Float32Array,
  accuracyLevel: 0 | 4 = 0,
): Promise<{ out: Record<string, Float32Array>; dataInitializers: number }> {
  const w = dequantizeMatrix(m);
  const wT = new Float32Array(m.rows * m.cols);
  for (let r = 0; r < m.rows; r++) for (let c = 0; c < m.cols; c++) wT[c * m.rows + r] = w[r * m.cols + c]!;
  const g = new GraphBuilder('block-quantized', { opset: 21 });
  const xi = g.input('x', 'float32', [1, TOKENS, m.cols]);
  const ids = g.input('ids', 'int64', [1, IDS.length]);
  g.output(quantizedLinear(g, xi, 'w', m, accuracyLevel), 'float32', [1, TOKENS, m.rows], { name: 'linear' });
  g.output(g.ops.matMul(xi, g.initializer('wT', wT, [m.cols, m.rows])), 'float32', [1, TOKENS, m.rows], {
    name: 'linear_f32',
  });
  g.output(quantizedGather(g, ids, 'w', m, accuracyLevel), 'float32', [1, IDS.length, m.cols], { name: 'gather' });
  g.output(g.ops.gather(g.initializer('w_f32', w, [m.rows, m.cols]), ids), 'float32', [1, IDS.length, m.cols], {
    name: 'gather_f32',
  });
  const model = g.toModel({ opsets: { 'com.microsoft': 1 } });
  const data = model.graph.initializers.filter((t) => t.dtype === 'uint8' && /\.q[48]/.test(t.name));
  // However it is laid out, the matrix's values take its own bytes, once.
  assert.equal(
    data.reduce((n, t) => n + t.data.length, 0),
    m.data.length,
    'the lookup and the projection share their data initializers',
  );
  const out = await runModel(model, {
    x: f32(x, [1, TOKENS, m.cols]),
    ids: i64(
      IDS.map((i) => i % m.rows),
      [1, IDS.length],
    ),
  });
  return {
    out: Object.fromEntries(Object.entries(out).map(([k, v]) => [k, v.data as Float32Array])),
    dataInitializers: data.length,
  };
}

/**
 * Per output, the float32 rounding MatMulNBits may add to the exact product: n additions of terms no larger than
 * |x| · (2^bits · |scale| + |offset|) (an 8-bit matrix split in two halves, and the residual correction, included).
 */
function bounds(m: BlockQuantizedMatrix, x: Float32Array): Float64Array {
  const blocks = blocksPerRow(m);
  const out = new Float64Array(TOKENS * m.rows);
  for (let t = 0; t < TOKENS; t++) {
    for (let r = 0; r < m.rows; r++) {
      let sum = 0;
      for (let c = 0; c < m.cols; c++) {
        const b = r * blocks + Math.floor(c / m.blockSize);
        sum += Math.abs(x[t * m.cols + c]!) * (2 ** m.bits * Math.abs(m.scales[b]!) + Math.abs(m.offsets?.[b] ?? 0));
      }
      out[t * m.rows + r] = (m.cols + blocks + 4) * U * sum;
    }
  }
  return out;
}

describe('block-quantized ops in ONNX Runtime on real GGUF quant types', () => {
  before(function () {
    requireOracle(this);
  });

  // Measured on blk.0.attn_q (256×256; 3 tokens of uniform(−1, 1) inputs; onnxruntime-node 1.30 CPU). With float
  // activations (accuracy_level 0; an 8-bit matrix runs as two 4-bit halves, offsets as uint8 zero points plus a
  // residual correction) every difference stays within the float32 summation bound; with int8 activations
  // (accuracy_level 4) within a few percent of the largest output. GatherBlockQuantized (+ gathered residuals)
  // equals Gather to float32 rounding for every type.
  const files = (): string[] =>
    readdirSync(ORACLE_DIR)
      .filter((f) => /^quant-zoo-.*\.gguf$/.test(f) && f !== 'quant-zoo-F32.gguf')
      .sort();

  it('MatMulNBits stays within float32 rounding of MatMul and GatherBlockQuantized equals Gather, for every quant type', async () => {
    const measured = new Map<string, Measured>();
    for (const file of files()) {
      const gguf = readGguf(join(ORACLE_DIR, file));
      const tensor = gguf.tensors.find((t) => t.name === 'blk.0.attn_q.weight')!;
      const [cols, rows] = tensor.dims as [number, number];
      const m = toBlockQuantized(tensor.name, tensor.type, readTensorBytes(gguf, tensor), rows, cols);
      assert.deepEqual(dequantizeMatrix(m), readTensorF32(gguf, tensor));
      const x = pseudoRandom(TOKENS * cols, 11);
      const { out } = await runBoth(m, x);
      const bound = bounds(m, x);
      let linear = 0;
      let ratio = 0;
      for (let i = 0; i < bound.length; i++) {
        const d = Math.abs(out.linear![i]! - out.linear_f32![i]!);
        linear = Math.max(linear, d);
        ratio = Math.max(ratio, d / bound[i]!);
        assert.ok(d <= bound[i]!, `${file} ${m.sourceType}: output ${i} differs by ${d}, bound ${bound[i]}`);
      }
      assertClose(out.gather!, out.gather_f32!, `${file} ${m.sourceType}: gathered rows`);
      const int8 = (await runBoth(m, x, 4)).out;
      const scale = Math.max(...out.linear_f32!.map(Math.abs));
      const relative = Math.max(...int8.linear!.map((v, i) => Math.abs(v - out.linear_f32![i]!))) / scale;
      assert.ok(relative < 0.05, `${file} ${m.sourceType}: int8 activations off by ${relative} of the largest output`);
      assertClose(int8.gather!, out.gather_f32!, `${file} ${m.sourceType}: gathered rows (int8 layout)`);
      const seen = measured.get(m.sourceType);
      measured.set(m.sourceType, {
        linear: Math.max(linear, seen?.linear ?? 0),
        ratio: Math.max(ratio, seen?.ratio ?? 0),
        int8: Math.max(relative, seen?.int8 ?? 0),
      });
    }
    assert.deepEqual([...measured.keys()].sort(), [
      'Q2_K',
      'Q3_K',
      'Q4_0',
      'Q4_1',
      'Q4_K',
      'Q5_0',
      'Q5_1',
      'Q5_K',
      'Q6_K',
      'Q8_0',
    ]);
    for (const [type, d] of measured) {
      console.log(
        `      ${type}: max |MatMulNBits − MatMul| ${d.linear.toExponential(2)} (${(100 * d.ratio).toFixed(1)}% of bound); int8 activations ${(100 * d.int8).toFixed(2)}% of the largest output`,
      );
    }
  });

  it('a block whose scale is 0 still yields its offset, through the residual', async () => {
    const cols = 64;
    const m: BlockQuantizedMatrix = {
      kind: 'block-quantized',
      rows: 2,
      cols,
      bits: 4,
      blockSize: 32,
      data: Uint8Array.from({ length: cols }, (_, i) => (i * 37) & 0xff),
      scales: Float32Array.from([0.5, 0, 0, 0.25]),
      zeroPoints: new Uint8Array(4),
      offsets: Float32Array.from([-1, 0.75, -0.125, 0]),
      sourceType: 'Q4_K',
    };
    const x = pseudoRandom(TOKENS * cols, 5);
    const { out } = await runBoth(m, x);
    assertClose(out.gather!, out.gather_f32!, 'gathered rows');
    const bound = bounds(m, x);
    for (let i = 0; i < bound.length; i++) assert.ok(Math.abs(out.linear![i]! - out.linear_f32![i]!) <= bound[i]!);
  });

  it('an 8-bit matrix runs as two 4-bit halves with float activations and whole with int8 ones', async () => {
    const cols = 64;
    const m: BlockQuantizedMatrix = {
      kind: 'block-quantized',
      rows: 3,
      cols,
      bits: 8,
      blockSize: 32,
      data: Uint8Array.from({ length: 3 * cols }, (_, i) => (i * 97) & 0xff),
      scales: Float32Array.from([0.5, 0.125, 0.25, 1, 0.75, 0.0625]),
      zeroPoints: Uint8Array.from([128, 128, 16, 32, 0, 0]),
      offsets: Float32Array.from([0, 0, 0, 0, -3.3, 7.1]),
      sourceType: 'Q5_K',
    };
    const x = pseudoRandom(TOKENS * cols, 9);
    const float = await runBoth(m, x);
    assert.equal(float.dataInitializers, 2);
    const bound = bounds(m, x);
    for (let i = 0; i < bound.length; i++)
      assert.ok(Math.abs(float.out.linear![i]! - float.out.linear_f32![i]!) <= bound[i]!);
    assert.equal((await runBoth(m, x, 4)).dataInitializers, 1);
  });

  // What ONNX Runtime keeps of a matrix is what the graph stores (MatMulNBits prepacks its data and releases the
  // original): pinned per 256 weights, against the file's own bytes (Q4_K 144, Q5_K 176, Q6_K 210, Q2_K 84).
  it('K-quant minimums take 4-bit steps and split 8-bit halves share their scales with no zero points', () => {
    const expected: Record<string, { file: string; perSuperBlock: number }> = {
      // data 128 + float scales 8 × 4 + 4-bit zero points 8 × 0.5 + minimum steps 16 × 0.5 and their scale 4.
      Q4_K: { file: 'quant-zoo-Q4_K-pure.gguf', perSuperBlock: 128 + 32 + 4 + 12 },
      // two 4-bit halves 256 + scales 32 + minimums 12; 5-bit values rebased to 136 need no zero points.
      Q5_K: { file: 'quant-zoo-Q5_K-pure.gguf', perSuperBlock: 256 + 32 + 12 },
      // two 4-bit halves 256 + float scales 16 × 4, once for both halves.
      Q6_K: { file: 'quant-zoo-Q6_K.gguf', perSuperBlock: 256 + 64 },
      // 2-bit values in 4 bits 128 + float scales 16 × 4 + zero points 8 + minimum steps 32 × 0.5 and their scale 4.
      Q2_K: { file: 'quant-zoo-Q2_K-pure.gguf', perSuperBlock: 128 + 64 + 8 + 20 },
    };
    for (const [type, { file, perSuperBlock }] of Object.entries(expected)) {
      const gguf = readGguf(join(ORACLE_DIR, file));
      const tensor = gguf.tensors.find((t) => t.name === 'blk.0.attn_q.weight')!;
      const [cols, rows] = tensor.dims as [number, number];
      const m = toBlockQuantized(tensor.name, tensor.type, readTensorBytes(gguf, tensor), rows, cols);
      assert.equal(m.sourceType, type);
      if (m.minima) {
        const { scales, steps, blocksPerScale } = m.minima;
        m.offsets!.forEach((o, i) => assert.ok(Object.is(o, -(scales[Math.floor(i / blocksPerScale)]! * steps[i]!))));
        // Rows sliced off (as a fused Phi-3 matrix is split) keep their minima, and stay well formed.
        const part = sliceRows(m, cols, 3, 5) as BlockQuantizedMatrix;
        checkBlockQuantized(part, `${type} rows 3..8`);
        assert.deepEqual(dequantizeMatrix(part), dequantizeMatrix(m).slice(3 * cols, 8 * cols));
      }
      const g = new GraphBuilder('layout', { opset: 21 });
      const x = g.input('x', 'float32', [1, TOKENS, cols]);
      g.output(quantizedLinear(g, x, 'w', m), 'float32', [1, TOKENS, rows], { name: 'y' });
      const initializers = g.toModel({ opsets: { 'com.microsoft': 1 } }).graph.initializers;
      const bytes = initializers.reduce((n, t) => n + (t.data as ArrayBufferView).byteLength, 0);
      assert.ok(!initializers.some((t) => /residuals/.test(t.name)), `${type}: no float residuals`);
      // A few bytes of shape constants besides.
      assert.ok(bytes - (rows * cols * perSuperBlock) / 256 < 256, `${type}: ${bytes} bytes stored`);
      assert.ok(bytes >= (rows * cols * perSuperBlock) / 256, `${type}: ${bytes} bytes stored`);
    }
  });
});

// Equal to float32 rounding: the split halves and the residuals add in an order Gather does not.
function assertClose(actual: Float32Array, expected: Float32Array, what: string): void {
  for (let i = 0; i < expected.length; i++) {
    const tolerance = 4 * U * Math.max(1, Math.abs(expected[i]!));
    assert.ok(Math.abs(actual[i]! - expected[i]!) <= tolerance, `${what}: value ${i} ${actual[i]} vs ${expected[i]}`);
  }
}
