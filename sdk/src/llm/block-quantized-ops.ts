// The ONNX Runtime nodes that compute with a block-quantized weight matrix without widening it: MatMulNBits for a
// projection, GatherBlockQuantized for an embedding lookup, each with what a per-block offset needs on top.
//
// Measured on onnxruntime-node 1.30's CPU kernels (one thread, a 128256 × 256 matrix, one token): 4-bit weights with
// uint8 zero points take 9 ms with float activations and 2 ms with int8 ones; 8-bit weights 4.5 ms with int8
// activations but 240 ms with float ones; float zero points 170–190 ms at any accuracy level (dense float32 MatMul:
// 12 ms). So every matrix here runs with uint8 zero points, and an 8-bit one that must multiply float activations is
// split into two 4-bit halves.
import type { GraphBuilder, Value, ValueRef } from '../onnx/index.js';
import { blocksPerRow, checkBlockQuantized, type BlockMinima, type BlockQuantizedMatrix } from './block-quantized.js';

/** The contrib domain of MatMulNBits and GatherBlockQuantized; a model using them imports it at version 1. */
export const MS_DOMAIN = 'com.microsoft';

/** How a matrix is laid out for ONNX Runtime: its own blocks, or an 8-bit one as two 4-bit halves. */
interface Stored {
  /**
   * `[rows, blocks, blockSize · bits / 8]` initializers, their products summed; every part reads the same scales.
   * `high`: the high half of a split matrix, whose activations are multiplied by 16 first (exact in float32) instead
   * of keeping its own scales 16 times larger.
   */
  parts: { data: Value; bits: 4 | 8; zeroPoints: Uint8Array; high: boolean }[];
  scales: Float32Array;
  /** What the zero points could not absorb, per block, for an exact correction; undefined when nothing is left. */
  residuals?: Float32Array;
  /** Minimums kept as whole steps of a shared scale (see {@link storedMinima}), subtracted after the product. */
  minima?: { data: Uint8Array; blockSize: 16 | 32; scales: Float32Array; blocksPerScale: number };
  /** Per-block float offsets a lookup adds (the residuals, or with `minima` the offsets themselves). */
  gatherOffsets?: Float32Array;
  /** Constants made once per layout (scales and zero points), by name. */
  constants: Map<string, Value>;
}

// One layout per matrix, graph and split: a tied embedding (the same matrix read by the lookup and the output
// projection) is stored once.
const storedOf = new WeakMap<GraphBuilder, WeakMap<BlockQuantizedMatrix, Map<boolean, Stored>>>();

/**
 * `m` as initializers. K-quant minimums (`m.minima`) are stored as 4-bit steps of their shared scale (float
 * activations only); other offsets
 * move into the zero points as far as they go (`zp' = clamp(zp + round(−offset / scale))`) and what is left, the
 * residual, is returned for an exact correction. `split` stores an 8-bit matrix as two 4-bit ones, after moving
 * every block's zero point to one shared base where the values allow (see {@link rebase}):
 * `q − zp = 16 · (q >> 4 − zp >> 4) + (q & 15 − zp & 15)`.
 */
function stored(g: GraphBuilder, name: string, m: BlockQuantizedMatrix, split: boolean): Stored {
  let perGraph = storedOf.get(g);
  if (!perGraph) storedOf.set(g, (perGraph = new WeakMap()));
  let perMatrix = perGraph.get(m);
  if (!perMatrix) perGraph.set(m, (perMatrix = new Map()));
  const hit = perMatrix.get(split);
  if (hit) return hit;
  const blocks = blocksPerRow(m);
  // With int8 activations the weights stay centred on their zero points: uncentred 4-bit values (0..15 times the
  // scale) multiply each activation's rounding error by about twice as much, which the oracle's int8 tolerances
  // do not leave room for.
  const minima = split && m.offsets && m.minima && compactMinima(m.minima) ? storedMinima(m.minima) : undefined;
  const { zeroPoints, residuals } =
    m.offsets && !minima ? centreOffsets(m, m.offsets) : { zeroPoints: m.zeroPoints, residuals: undefined };
  const constant = (data: Uint8Array, bits: 4 | 8, suffix: string): Value =>
    g.constant(data, [m.rows, blocks, (m.blockSize * bits) / 8], { dtype: 'uint8', prefix: `${name}.${suffix}` });
  let parts: Stored['parts'];
  if (m.bits === 8) {
    const based = rebase(m, zeroPoints, split ? [136, 128] : [128]);
    const data = based?.data ?? m.data;
    const zeros = based ? new Uint8Array(zeroPoints.length).fill(based.base) : zeroPoints;
    if (split) {
      const { high, low } = splitBytes(data);
      parts = [
        { data: constant(high, 4, 'q4_high'), bits: 4, zeroPoints: zeros.map((z) => z >> 4), high: true },
        { data: constant(low, 4, 'q4_low'), bits: 4, zeroPoints: zeros.map((z) => z & 15), high: false },
      ];
    } else {
      parts = [{ data: constant(data, 8, 'q8'), bits: 8, zeroPoints: zeros, high: false }];
    }
  } else {
    parts = [{ data: constant(m.data, m.bits, `q${m.bits}`), bits: m.bits, zeroPoints, high: false }];
  }
  const kept = residuals?.some((r) => r !== 0) ? residuals : undefined;
  const result: Stored = {
    parts,
    scales: m.scales,
    ...(kept && { residuals: kept, gatherOffsets: kept }),
    ...(minima && { minima, gatherOffsets: m.offsets }),
    constants: new Map(),
  };
  perMatrix.set(split, result);
  return result;
}

/** A constant of `layout` made on first use, so that every node reading it reads one initializer. */
function layoutConstant(layout: Stored, key: string, make: () => Value): Value {
  let value = layout.constants.get(key);
  if (!value) layout.constants.set(key, (value = make()));
  return value;
}

/**
 * `x · mᵀ`: x `[…, cols]` → `[…, rows]` through MatMulNBits (K = cols, N = rows), uint8 zero points only. An offset
 * the zero point cannot hold leaves a residual of at most half a step (all of it when the zero point is pinned at
 * its range), added back exactly by `blockSums(x) · residualsᵀ`, where blockSums sums x over each block; K-quant
 * minimums are subtracted as `blockSums(x) · minimaᵀ` by a second, small MatMulNBits.
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
  const scales = layoutConstant(layout, 'scales', () =>
    g.constant(layout.scales, [m.rows * blocks], { prefix: `${name}.scales` }),
  );
  const products = layout.parts.map((p, i) => {
    const a = p.high ? g.ops.mul(x, 16) : x;
    const inputs = [a, p.data, scales];
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
  if (layout.minima) {
    const { blockSize, scales: minScales, blocksPerScale } = layout.minima;
    const runs = minScales.length / m.rows;
    const data = layoutConstant(layout, 'minima', () =>
      g.constant(layout.minima!.data, [m.rows, runs, blocksPerScale], { dtype: 'uint8', prefix: `${name}.minima` }),
    );
    // Per run of blocks sharing a scale: the block sums, then the same sums × 16 for the steps' high halves.
    const sums = g.ops.reduceSum(
      g.ops.reshape(x, [-1, blocks / blocksPerScale, blocksPerScale, m.blockSize]),
      [3],
      false,
    );
    const a = g.ops.reshape(g.ops.concat([sums, g.ops.mul(sums, 16)], 2), [-1, 2 * blocks]);
    const subtracted = g.node(
      'MatMulNBits',
      [a, data, g.constant(minScales, [minScales.length], { prefix: `${name}.minima_scales` })],
      { K: 2 * blocks, N: m.rows, bits: 4, block_size: blockSize, accuracy_level: 0 },
      { domain: MS_DOMAIN, name: `${name}.minima` },
    );
    y = g.ops.sub(y, g.ops.reshape(subtracted, g.ops.shape(y)));
  }
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
 * {@link quantizedLinear} at the same `accuracyLevel`, so a tied embedding is stored once; offsets (or residuals)
 * are gathered per block and added.
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
  const scales = layoutConstant(layout, 'gather_scales', () =>
    g.constant(layout.scales, perBlock, { prefix: `${name}.gather_scales` }),
  );
  const parts = layout.parts.map((p, i) => {
    const inputs = [p.data, ids, scales];
    // GatherBlockQuantized's default zero point is MatMulNBits': one block per last-axis slice, a 4-bit one in the
    // low nibble of its own byte.
    if (p.zeroPoints.some((z) => z !== 1 << (p.bits - 1)))
      inputs.push(g.constant(p.zeroPoints, perBlock, { dtype: 'uint8', prefix: `${name}.gather_zero_points` }));
    const part = g.node(
      'GatherBlockQuantized',
      inputs,
      { bits: p.bits, block_size: m.blockSize, gather_axis: 0, quantize_axis: 2 },
      { domain: MS_DOMAIN, name: layout.parts.length > 1 ? `${name}.${i}` : name },
    );
    return p.high ? g.ops.mul(part, 16) : part;
  });
  let rows = parts.length > 1 ? g.ops.add(parts[0]!, parts[1]!) : parts[0]!;
  if (layout.gatherOffsets)
    rows = g.ops.add(
      rows,
      g.ops.gather(g.constant(layout.gatherOffsets, perBlock, { prefix: `${name}.gather_offsets` }), ids),
    );
  return g.ops.reshape(rows, g.ops.concat([g.ops.shape(ids), g.int64s([m.cols], 'cols')], 0));
}

/** Whether minima fit {@link storedMinima}: runs of 8 or 16 blocks (K-quants), steps below 120. */
function compactMinima(minima: BlockMinima): boolean {
  return (minima.blocksPerScale === 8 || minima.blocksPerScale === 16) && minima.steps.every((s) => s < 120);
}

/**
 * Minimums as a 4-bit matrix `[rows, blocks / run, run]` bytes for MatMulNBits (K = 2 · blocks, block = 2 · run,
 * default zero point 8) with the minima's scales: each step `m = 16 · h + l`, `l` in [−8, 7], is stored as `l + 8`
 * in the first half of its run's block and `h + 8` in the second, which multiply the block sums and 16 × the block
 * sums. 12 bytes per 8 blocks of 32 where a float per block takes 32.
 */
function storedMinima(minima: BlockMinima): NonNullable<Stored['minima']> {
  const run = minima.blocksPerScale;
  const runs = minima.scales.length;
  const data = new Uint8Array(runs * run);
  for (let r = 0; r < runs; r++) {
    for (let j = 0; j < run; j++) {
      const step = minima.steps[r * run + j]!;
      const low = ((step + 8) & 15) - 8;
      const high = (step - low) / 16;
      setNibble(data, r * 2 * run + j, low + 8);
      setNibble(data, r * 2 * run + run + j, high + 8);
    }
  }
  return {
    data,
    blockSize: (2 * run) as 16 | 32,
    scales: minima.scales,
    blocksPerScale: run,
  };
}

function setNibble(bytes: Uint8Array, index: number, value: number): void {
  const at = index >> 1;
  bytes[at] = bytes[at]! | (value << (4 * (index & 1)));
}

/**
 * An 8-bit matrix with every block's zero point moved to one of `bases` (`q' = q − zp + base`), when each block's
 * values fit a byte that way; undefined when none fits. With base 136 (0x88) both 4-bit halves have ORT's default
 * zero point 8 and need none stored; with 128 the 8-bit matrix has its default 128.
 */
function rebase(
  m: BlockQuantizedMatrix,
  zeroPoints: Uint8Array,
  bases: readonly number[],
): { data: Uint8Array; base: number } | undefined {
  let low = 0;
  let high = 0;
  for (let i = 0; i < m.data.length; i++) {
    const d = m.data[i]! - zeroPoints[Math.floor(i / m.blockSize)]!;
    if (d < low) low = d;
    else if (d > high) high = d;
  }
  const base = bases.find((b) => b + low >= 0 && b + high <= 255);
  if (base === undefined) return undefined;
  const data = new Uint8Array(m.data.length);
  for (let i = 0; i < data.length; i++) data[i] = m.data[i]! - zeroPoints[Math.floor(i / m.blockSize)]! + base;
  return { data, base };
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
