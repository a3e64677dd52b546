// GGUF quant types kept quantized in ONNX Runtime: MatMulNBits and GatherBlockQuantized over real llama-quantize
// tensors (the oracle's quant-zoo files) against float32 MatMul and Gather over the same values dequantized.
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { GraphBuilder } from '@nucleus/sdk/onnx';
import {
  blocksPerRow,
  dequantizeMatrix,
  floatZeroPoints,
  quantizedGather,
  quantizedLinear,
  readGguf,
  readTensorBytes,
  readTensorF32,
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
  linear: number;
  /** Of linear − float32 over the bound, the largest. */
  ratio: number;
  /** 4 bits with offsets: max |(q − zp') · scale − value| over the weights, zp' the float32 zero point. */
  weights?: number;
}

/** How far float zero points move the weights themselves (what ORT computes per weight before summing). */
function floatZeroPointError(m: BlockQuantizedMatrix): number | undefined {
  if (m.bits !== 4 || !m.offsets) return undefined;
  const { zeroPoints, scales, data } = floatZeroPoints(m);
  const exact = dequantizeMatrix(m);
  const bytes = data ?? m.data;
  let max = 0;
  for (let i = 0; i < exact.length; i++) {
    const b = Math.floor(i / m.blockSize);
    const q = i & 1 ? bytes[i >> 1]! >> 4 : bytes[i >> 1]! & 0x0f;
    max = Math.max(max, Math.abs(Math.fround((q - zeroPoints[b]!) * scales[b]!) - exact[i]!));
  }
  return max;
}

/** Runs m as a projection and as a lookup table, quantized and as float32, in one model; returns both outputs. */
async function runBoth(m: BlockQuantizedMatrix, x: Float32Array): Promise<Record<string, Float32Array>> {
  const w = dequantizeMatrix(m);
  const wT = new Float32Array(m.rows * m.cols);
  for (let r = 0; r < m.rows; r++) for (let c = 0; c < m.cols; c++) wT[c * m.rows + r] = w[r * m.cols + c]!;
  const g = new GraphBuilder('block-quantized', { opset: 21 });
  const xi = g.input('x', 'float32', [1, TOKENS, m.cols]);
  const ids = g.input('ids', 'int64', [1, IDS.length]);
  g.output(quantizedLinear(g, xi, 'w', m), 'float32', [1, TOKENS, m.rows], { name: 'linear' });
  g.output(g.ops.matMul(xi, g.initializer('wT', wT, [m.cols, m.rows])), 'float32', [1, TOKENS, m.rows], {
    name: 'linear_f32',
  });
  g.output(quantizedGather(g, ids, 'w', m), 'float32', [1, IDS.length, m.cols], { name: 'gather' });
  g.output(g.ops.gather(g.initializer('w_f32', w, [m.rows, m.cols]), ids), 'float32', [1, IDS.length, m.cols], {
    name: 'gather_f32',
  });
  const model = g.toModel({ opsets: { 'com.microsoft': 1 } });
  // A tied matrix is stored once: the lookup and the projection read the same data initializer.
  const packed = model.graph.initializers.filter((t) => t.dtype === 'uint8' && t.data.length === m.data.length);
  const rewritten = m.bits === 4 && m.offsets !== undefined && floatZeroPoints(m).data !== undefined;
  assert.equal(packed.length, rewritten ? 2 : 1, 'one data initializer shared by MatMulNBits and GatherBlockQuantized');
  const out = await runModel(model, {
    x: f32(x, [1, TOKENS, m.cols]),
    ids: i64(
      IDS.map((i) => i % m.rows),
      [1, IDS.length],
    ),
  });
  return Object.fromEntries(Object.entries(out).map(([k, v]) => [k, v.data as Float32Array]));
}

/** Per output, the float32 rounding MatMulNBits may add to the exact product (see U). */
function bounds(m: BlockQuantizedMatrix, x: Float32Array): Float64Array {
  const w = dequantizeMatrix(m);
  const blocks = blocksPerRow(m);
  const zp = m.bits === 4 && m.offsets ? floatZeroPoints(m) : undefined;
  const out = new Float64Array(TOKENS * m.rows);
  for (let t = 0; t < TOKENS; t++) {
    for (let r = 0; r < m.rows; r++) {
      let sum = 0;
      let zeroRounding = 0;
      let offsets = 0;
      for (let c = 0; c < m.cols; c++) {
        const b = r * blocks + Math.floor(c / m.blockSize);
        const xv = Math.abs(x[t * m.cols + c]!);
        sum += xv * Math.abs(w[r * m.cols + c]!);
        offsets += xv * Math.abs(m.offsets?.[b] ?? 0);
        // A float zero point is rounded to float32: half an ulp of |zp'|, times the scale, per weight.
        if (zp) zeroRounding += xv * Math.abs(zp.scales[b]!) * Math.abs(zp.zeroPoints[b]!) * U;
      }
      out[t * m.rows + r] = (m.cols + blocks + 2) * U * (sum + offsets) + zeroRounding;
    }
  }
  return out;
}

describe('block-quantized ops in ONNX Runtime on real GGUF quant types', () => {
  before(function () {
    requireOracle(this);
  });

  // Measured on blk.0.attn_q (256×256; 3 tokens of uniform(−1, 1) inputs; onnxruntime-node 1.30 CPU,
  // accuracy_level 0; outputs are ~0.5 in size). Max |MatMulNBits − float32 MatMul|:
  //   Q2_K 9.5e-7, Q4_1 8.3e-7, Q4_K 6.6e-7 (4-bit with offsets: float zero points, which move a weight by at
  //   most 1.5e-8); Q5_1 1.2e-6, Q5_K 1.3e-6 (8-bit with offsets: uint8 zero points + blockSums · offsetsᵀ);
  //   Q3_K 0, Q4_0 0, Q5_0 8.3e-7, Q6_K 7.2e-7, Q8_0 7.2e-7 (uint8 zero points).
  // Every difference stays under 1.1% of the float32 summation bound asserted; GatherBlockQuantized (+ gathered
  // offsets) equals Gather bit for bit for every type.
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
      const out = await runBoth(m, x);
      const bound = bounds(m, x);
      let linear = 0;
      let ratio = 0;
      for (let i = 0; i < bound.length; i++) {
        const d = Math.abs(out.linear![i]! - out.linear_f32![i]!);
        linear = Math.max(linear, d);
        ratio = Math.max(ratio, d / bound[i]!);
        assert.ok(d <= bound[i]!, `${file} ${m.sourceType}: output ${i} differs by ${d}, bound ${bound[i]}`);
      }
      assert.deepEqual(out.gather, out.gather_f32, `${file} ${m.sourceType}: gathered rows`);
      const seen = measured.get(m.sourceType);
      const weights = floatZeroPointError(m);
      measured.set(m.sourceType, {
        linear: Math.max(linear, seen?.linear ?? 0),
        ratio: Math.max(ratio, seen?.ratio ?? 0),
        ...(weights !== undefined && { weights: Math.max(weights, seen?.weights ?? 0) }),
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
      const w = d.weights === undefined ? '' : `, weights moved by float zero points ≤ ${d.weights.toExponential(2)}`;
      console.log(
        `      ${type}: max |MatMulNBits − MatMul| ${d.linear.toExponential(2)} (${(100 * d.ratio).toFixed(1)}% of bound)${w}`,
      );
    }
  });

  it('a 4-bit block whose scale is 0 still yields its offset through float zero points', async () => {
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
    const out = await runBoth(m, pseudoRandom(TOKENS * cols, 5));
    assert.deepEqual(out.gather, out.gather_f32);
    const bound = bounds(m, pseudoRandom(TOKENS * cols, 5));
    for (let i = 0; i < bound.length; i++) assert.ok(Math.abs(out.linear![i]! - out.linear_f32![i]!) <= bound[i]!);
  });
});
