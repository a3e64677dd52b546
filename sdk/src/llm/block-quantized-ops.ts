// The ONNX Runtime nodes that compute with a block-quantized weight matrix without widening it: MatMulNBits for a
// projection, GatherBlockQuantized for an embedding lookup, each with what a per-block offset needs on top.
//
// Measured on onnxruntime-node 1.30's CPU kernels (one thread, a 128256 × 256 matrix, one token): 4-bit weights with
// uint8 zero points take 9 ms with float activations and 2 ms with int8 ones; 8-bit weights 4.5 ms with int8
// activations but 240 ms with float ones; float zero points 170–190 ms at any accuracy level (dense float32 MatMul:
// 12 ms). So every matrix here runs with uint8 zero points, and an 8-bit one that must multiply float activations is
// split into two 4-bit halves.
import type { GraphBuilder, Value, ValueRef } from '../onnx/index.js';
import { blocksPerRow, checkBlockQuantized, type BlockQuantizedMatrix } from './block-quantized.js';

/** The contrib domain of MatMulNBits and GatherBlockQuantized; a model using them imports it at version 1. */
export const MS_DOMAIN = 'com.microsoft';

/** How a matrix is laid out for ONNX Runtime: its own blocks, or an 8-bit one as two 4-bit halves. */
interface Stored {
  /** `[rows, blocks, blockSize · bits / 8]` initializers with their scales and uint8 zero points, summed. */
  parts: { data: Value; bits: 4 | 8; scales: Float32Array; zeroPoints: Uint8Array }[];
  /** What the zero points could not absorb, per block; undefined when nothing is left. */
  residuals?: Float32Array;
}

// One layout per matrix, graph and split: a tied embedding (the same matrix read by the lookup and the output
// projection) is stored once.
const storedOf = new WeakMap<GraphBuilder, WeakMap<BlockQuantizedMatrix, Map<boolean, Stored>>>();

/**
 * `m` as initializers. Offsets move into the zero points as far as they go (`zp' = clamp(zp + round(−offset / scale))`)
 * and what is left, the residual, is returned for an exact correction. `split` stores an 8-bit matrix as two 4-bit
 * ones: `q − zp = 16 · (q >> 4 − zp >> 4) + (q & 15 − zp & 15)`, the high half scaled by 16 · scale.
 */
function stored(g: GraphBuilder, name: string, m: BlockQuantizedMatrix, split: boolean): Stored {
  let perGraph = storedOf.get(g);
  if (!perGraph) storedOf.set(g, (perGraph = new WeakMap()));
  let perMatrix = perGraph.get(m);
  if (!perMatrix) perGraph.set(m, (perMatrix = new Map()));
  const hit = perMatrix.get(split);
  if (hit) return hit;
  const blocks = blocksPerRow(m);
  const { zeroPoints, residuals } = m.offsets
    ? centreOffsets(m, m.offsets)
    : { zeroPoints: m.zeroPoints, residuals: undefined };
  const constant = (data: Uint8Array, bits: 4 | 8, suffix: string): Value =>
    g.constant(data, [m.rows, blocks, (m.blockSize * bits) / 8], { dtype: 'uint8', prefix: `${name}.${suffix}` });
  let parts: Stored['parts'];
  if (split && m.bits === 8) {
    const { high, low } = splitBytes(m.data);
    const highScales = m.scales.map((s) => s * 16);
    parts = [
      { data: constant(high, 4, 'q4_high'), bits: 4, scales: highScales, zeroPoints: zeroPoints.map((z) => z >> 4) },
      { data: constant(low, 4, 'q4_low'), bits: 4, scales: m.scales, zeroPoints: zeroPoints.map((z) => z & 15) },
    ];
  } else {
    parts = [{ data: constant(m.data, m.bits, `q${m.bits}`), bits: m.bits, scales: m.scales, zeroPoints }];
  }
  const result: Stored = residuals?.some((r) => r !== 0) ? { parts, residuals } : { parts };
  perMatrix.set(split, result);
  return result;
}

/**
 * `x · mᵀ`: x `[…, cols]` → `[…, rows]` through MatMulNBits (K = cols, N = rows), uint8 zero points only. An offset
 * the zero point cannot hold leaves a residual of at most half a step (all of it when the zero point is pinned at
 * its range), added back exactly by `blockSums(x) · residualsᵀ`, where blockSums sums x over each block.
 * `accuracyLevel` is MatMulNBits' `accuracy_level`: 0 multiplies float32 activations (an 8-bit matrix then runs as
 * two 4-bit halves, ORT's fast float kernel), 4 quantizes the activations to int8 per block as llama.cpp does.
 */
export function quantizedLinear(
  g: GraphBuilder,
  x: ValueRef,
  name: string,
  m: BlockQuantizedMatrix,
  accuracyLevel = 0,
): Value {
  checkBlockQuantized(m, name);
  g.requireOpset(MS_DOMAIN, 1, undefined, 'MatMulNBits');
  const blocks = blocksPerRow(m);
  const layout = stored(g, name, m, accuracyLevel !== 4);
  const products = layout.parts.map((p, i) => {
    const inputs = [x, p.data, g.constant(p.scales, [m.rows * blocks], { prefix: `${name}.scales` })];
    // ORT's default zero point is 2^(bits−1); any other is passed, 4-bit ones two a byte.
    if (p.zeroPoints.some((z) => z !== 1 << (p.bits - 1))) {
      const packed = p.bits === 8 ? p.zeroPoints : packNibbles(p.zeroPoints, m.rows, blocks);
      inputs.push(g.constant(packed, [packed.length], { dtype: 'uint8', prefix: `${name}.zero_points` }));
    }
    return g.node(
      'MatMulNBits',
      inputs,
      { K: m.cols, N: m.rows, bits: p.bits, block_size: m.blockSize, accuracy_level: accuracyLevel },
      { domain: MS_DOMAIN, name: layout.parts.length > 1 ? `${name}.${i}` : name },
    );
  });
  let y = products.length > 1 ? g.ops.add(products[0]!, products[1]!) : products[0]!;
  if (!layout.residuals) return y;
  // Σ_b Σ_j x[b·bs + j] · residual[n, b] = Σ_b blockSum_b(x) · residual[n, b]: one small [blocks, N] MatMul.
  const residualsT = new Float32Array(blocks * m.rows);
  for (let r = 0; r < m.rows; r++)
    for (let b = 0; b < blocks; b++) residualsT[b * m.rows + r] = layout.residuals[r * blocks + b]!;
  const sums = g.ops.reduceSum(g.ops.reshape(x, [-1, blocks, m.blockSize]), [2], false);
  const correction = g.ops.matMul(sums, g.constant(residualsT, [blocks, m.rows], { prefix: `${name}.residuals_t` }));
  y = g.ops.add(y, g.ops.reshape(correction, g.ops.shape(y)));
  return y;
}

/**
 * Rows of `m` for `ids` through GatherBlockQuantized: ids `[…]` → `[…, cols]`. Reads the same initializers as
 * {@link quantizedLinear} at the same `accuracyLevel`, so a tied embedding is stored once; residuals are gathered
 * per block and added.
 */
export function quantizedGather(
  g: GraphBuilder,
  ids: ValueRef,
  name: string,
  m: BlockQuantizedMatrix,
  accuracyLevel = 0,
): Value {
  checkBlockQuantized(m, name);
  g.requireOpset(MS_DOMAIN, 1, undefined, 'GatherBlockQuantized');
  const blocks = blocksPerRow(m);
  const perBlock = [m.rows, blocks, 1];
  const layout = stored(g, name, m, accuracyLevel !== 4);
  const parts = layout.parts.map((p, i) =>
    g.node(
      'GatherBlockQuantized',
      [
        p.data,
        ids,
        g.constant(p.scales, perBlock, { prefix: `${name}.gather_scales` }),
        // One block per last-axis slice: a 4-bit zero point sits in the low nibble of its own byte.
        g.constant(p.zeroPoints, perBlock, { dtype: 'uint8', prefix: `${name}.gather_zero_points` }),
      ],
      { bits: p.bits, block_size: m.blockSize, gather_axis: 0, quantize_axis: 2 },
      { domain: MS_DOMAIN, name: layout.parts.length > 1 ? `${name}.${i}` : name },
    ),
  );
  let rows = parts.length > 1 ? g.ops.add(parts[0]!, parts[1]!) : parts[0]!;
  if (layout.residuals)
    rows = g.ops.add(rows, g.ops.gather(g.constant(layout.residuals, perBlock, { prefix: `${name}.residuals` }), ids));
  return g.ops.reshape(rows, g.ops.concat([g.ops.shape(ids), g.int64s([m.cols], 'cols')], 0));
}

/**
 * Blocks with offsets: the whole steps of each offset folded into its zero point, `(q − zp') · scale + residual
 * = (q − zp) · scale + offset` with `zp' = clamp(zp + round(−offset / scale), 0, 2^bits − 1)` and the residual what is
 * left (at most half a step unless the zero point hit its range).
 */
export function centreOffsets(
  m: BlockQuantizedMatrix,
  offsets: Float32Array,
): { zeroPoints: Uint8Array; residuals: Float32Array } {
  const n = m.scales.length;
  const top = (1 << m.bits) - 1;
  const zeroPoints = new Uint8Array(n);
  const residuals = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const scale = m.scales[i]!;
    const base = m.zeroPoints[i]!;
    const steps = scale === 0 ? 0 : Math.round(-offsets[i]! / scale);
    const zero = Math.min(top, Math.max(0, base + steps));
    zeroPoints[i] = zero;
    residuals[i] = offsets[i]! + (zero - base) * scale;
  }
  return { zeroPoints, residuals };
}

// 8-bit values one a byte → their high and low nibbles, each packed two a byte (even element in the low nibble).
function splitBytes(data: Uint8Array): { high: Uint8Array; low: Uint8Array } {
  const high = new Uint8Array(data.length / 2);
  const low = new Uint8Array(data.length / 2);
  for (let i = 0; i < high.length; i++) {
    const a = data[2 * i]!;
    const b = data[2 * i + 1]!;
    high[i] = (a >> 4) | (b & 0xf0);
    low[i] = (a & 0x0f) | ((b & 0x0f) << 4);
  }
  return { high, low };
}

// MatMulNBits' 4-bit zero points: per row, two blocks a byte, the even block in the low nibble.
function packNibbles(values: Uint8Array, rows: number, blocks: number): Uint8Array {
  const perRow = Math.ceil(blocks / 2);
  const out = new Uint8Array(rows * perRow);
  for (let r = 0; r < rows; r++)
    for (let b = 0; b < blocks; b++) {
      const at = r * perRow + (b >> 1);
      out[at] = out[at]! | ((values[r * blocks + b]! & 0x0f) << (4 * (b & 1)));
    }
  return out;
}
