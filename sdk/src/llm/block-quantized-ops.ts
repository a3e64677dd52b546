// The ONNX Runtime nodes that compute with a block-quantized weight matrix without widening it: MatMulNBits for a
// projection, GatherBlockQuantized for an embedding lookup, each with what a per-block offset needs on top.
import type { GraphBuilder, Value, ValueRef } from '../onnx/index.js';
import { blocksPerRow, checkBlockQuantized, type BlockQuantizedMatrix } from './block-quantized.js';

/** The contrib domain of MatMulNBits and GatherBlockQuantized; a model using them imports it at version 1. */
export const MS_DOMAIN = 'com.microsoft';

// One data initializer per matrix and graph: a tied embedding (the same matrix read by the lookup and the output
// projection) is stored once. Both ops accept it as [rows, blocks, bytes per block].
const dataOf = new WeakMap<GraphBuilder, WeakMap<BlockQuantizedMatrix, Value>>();

function dataInitializer(g: GraphBuilder, name: string, m: BlockQuantizedMatrix): Value {
  let perGraph = dataOf.get(g);
  if (!perGraph) dataOf.set(g, (perGraph = new WeakMap()));
  let data = perGraph.get(m);
  if (!data) {
    const blocks = blocksPerRow(m);
    data = g.constant(m.data, [m.rows, blocks, (m.blockSize * m.bits) / 8], {
      dtype: 'uint8',
      prefix: `${name}.q${m.bits}`,
    });
    perGraph.set(m, data);
  }
  return data;
}

/**
 * `x · mᵀ`: x `[…, cols]` → `[…, rows]` through MatMulNBits (K = cols, N = rows). Zero points become uint8 inputs
 * (omitted when every one is ORT's default 2^(bits−1)). Offsets, which MatMulNBits has no input for:
 * - 4 bits: float zero points `zp − offset / scale` (so `(q − zp') · scale = (q − zp) · scale + offset` up to float32
 *   rounding of zp', about 2⁻²⁴ of |offset| per weight); a block with scale 0 is rewritten to q = 1, scale = offset;
 * - 8 bits (ORT has no float zero points there): MatMulNBits without them, plus the exact correction
 *   `blockSums(x) · offsetsᵀ`, where blockSums sums x over each block of `blockSize` inputs.
 * `accuracyLevel` is MatMulNBits' `accuracy_level` (0: float activations; 4: int8 activations per block; with
 * float zero points onnxruntime 1.30's CPU kernel computes in float32 even at 4).
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
  const floatZeros = m.bits === 4 && m.offsets !== undefined;
  let data = dataInitializer(g, name, m);
  let scales = m.scales;
  let zeroPoints: Value | null = null;
  if (floatZeros) {
    const fixed = floatZeroPoints(m);
    if (fixed.data)
      data = g.constant(fixed.data, [m.rows, blocks, m.blockSize / 2], { dtype: 'uint8', prefix: `${name}.q4` });
    scales = fixed.scales;
    zeroPoints = g.constant(fixed.zeroPoints, [m.rows * blocks], { prefix: `${name}.zero_points` });
  } else if (m.zeroPoints.some((z) => z !== 1 << (m.bits - 1))) {
    const packed = m.bits === 8 ? m.zeroPoints : packNibbles(m.zeroPoints, m.rows, blocks);
    zeroPoints = g.constant(packed, [packed.length], { dtype: 'uint8', prefix: `${name}.zero_points` });
  }
  const inputs = [x, data, g.constant(scales, [m.rows * blocks], { prefix: `${name}.scales` })];
  if (zeroPoints) inputs.push(zeroPoints);
  const y = g.node(
    'MatMulNBits',
    inputs,
    { K: m.cols, N: m.rows, bits: m.bits, block_size: m.blockSize, accuracy_level: accuracyLevel },
    { domain: MS_DOMAIN, name },
  );
  if (!m.offsets || floatZeros) return y;
  // Σ_b Σ_j x[b·bs + j] · offset[n, b] = Σ_b blockSum_b(x) · offset[n, b]: one small [blocks, N] MatMul.
  const offsetsT = new Float32Array(blocks * m.rows);
  for (let r = 0; r < m.rows; r++)
    for (let b = 0; b < blocks; b++) offsetsT[b * m.rows + r] = m.offsets[r * blocks + b]!;
  const sums = g.ops.reduceSum(g.ops.reshape(x, [-1, blocks, m.blockSize]), [2], false);
  const correction = g.ops.matMul(sums, g.constant(offsetsT, [blocks, m.rows], { prefix: `${name}.offsets_t` }));
  return g.ops.add(y, g.ops.reshape(correction, g.ops.shape(y)));
}

/**
 * Rows `ids` of m, as float32 `[…ids, cols]`, through GatherBlockQuantized (gather axis 0). The data is kept as
 * `[rows, blocks, bytes]` with one block along the last axis (scales and zero points `[rows, blocks, 1]`), the
 * shape MatMulNBits also takes, so a tied matrix shares its data initializer with `quantizedLinear`. Offsets are
 * gathered too and added to each block.
 */
export function quantizedGather(g: GraphBuilder, ids: ValueRef, name: string, m: BlockQuantizedMatrix): Value {
  checkBlockQuantized(m, name);
  g.requireOpset(MS_DOMAIN, 1, undefined, 'GatherBlockQuantized');
  const blocks = blocksPerRow(m);
  const perBlock = [m.rows, blocks, 1];
  const rows = g.node(
    'GatherBlockQuantized',
    [
      dataInitializer(g, name, m),
      ids,
      g.constant(m.scales, perBlock, { prefix: `${name}.gather_scales` }),
      // One block per last-axis slice: a 4-bit zero point sits in the low nibble of its own byte.
      g.constant(m.zeroPoints, perBlock, { dtype: 'uint8', prefix: `${name}.gather_zero_points` }),
    ],
    { bits: m.bits, block_size: m.blockSize, gather_axis: 0, quantize_axis: 2 },
    { domain: MS_DOMAIN, name },
  );
  const values = m.offsets
    ? g.ops.add(rows, g.ops.gather(g.constant(m.offsets, perBlock, { prefix: `${name}.gather_offsets` }), ids))
    : rows;
  return g.ops.reshape(values, g.ops.concat([g.ops.shape(ids), g.int64s([m.cols], 'cols')], 0));
}

/** Float zero points `zp − offset / scale` for a 4-bit matrix with offsets (see `quantizedLinear`). */
export function floatZeroPoints(m: BlockQuantizedMatrix): {
  zeroPoints: Float32Array;
  scales: Float32Array;
  /** A copy of the data, present only when a block had scale 0 and was rewritten. */
  data?: Uint8Array;
} {
  const n = m.scales.length;
  const zeroPoints = new Float32Array(n);
  let scales = m.scales;
  let data: Uint8Array | undefined;
  for (let i = 0; i < n; i++) {
    const scale = m.scales[i]!;
    const offset = m.offsets?.[i] ?? 0;
    if (scale !== 0 || offset === 0) {
      zeroPoints[i] = scale === 0 ? m.zeroPoints[i]! : m.zeroPoints[i]! - offset / scale;
      continue;
    }
    // Every value of the block is `offset`: store q = 1 with zero point 0 and scale `offset`.
    if (!data) {
      data = m.data.slice();
      scales = m.scales.slice();
    }
    data.fill(0x11, (i * m.blockSize) / 2, ((i + 1) * m.blockSize) / 2);
    scales[i] = offset;
    zeroPoints[i] = 0;
  }
  return data ? { zeroPoints, scales, data } : { zeroPoints, scales };
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
