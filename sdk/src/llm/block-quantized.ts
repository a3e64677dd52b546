/**
 * A weight matrix `[rows, cols]` (rows = output features, cols = input features) kept block-quantized the way ONNX
 * Runtime's `MatMulNBits` and `GatherBlockQuantized` read it: each row is cut into blocks of `blockSize` values along
 * `cols`, and value `j` of block `b` of row `r` is
 *
 *     (q[r, b, j] - zeroPoints[r·blocks + b]) · scales[r·blocks + b] + (offsets?.[r·blocks + b] ?? 0)
 *
 * computed in float32 in that order. GGUF's quant types map onto this without changing a value: a type with a
 * zero point (Q4_0, Q3_K, Q6_K …) uses `zeroPoints`; a type with a per-block minimum (Q4_1, Q4_K, Q2_K …) uses
 * `offsets`; 5- and 6-bit types are stored in 8 bits, 2- and 3-bit ones in 4.
 */
export interface BlockQuantizedMatrix {
  readonly kind: 'block-quantized';
  readonly rows: number;
  readonly cols: number;
  /** Bits per stored value. */
  readonly bits: 4 | 8;
  /** Values per block; `cols` is a multiple of it. */
  readonly blockSize: 16 | 32;
  /**
   * `[rows, cols / blockSize, blockSize · bits / 8]` bytes: 8-bit values one per byte; 4-bit values two per byte,
   * the even-indexed value in the low nibble.
   */
  readonly data: Uint8Array;
  /** `[rows · blocks]`. */
  readonly scales: Float32Array;
  /** `[rows · blocks]`, one unpacked byte per block. */
  readonly zeroPoints: Uint8Array;
  /** `[rows · blocks]`, added after scaling; absent when every block's offset is zero. */
  readonly offsets?: Float32Array;
  /** How `offsets` were made, where a run of blocks shares one minimum's scale (see {@link BlockMinima}). */
  readonly minima?: BlockMinima;
  /** The storage type it was read from (`Q4_K`, `Q8_0` …), for graph metadata and messages. */
  readonly sourceType: string;
}

/**
 * Offsets that are whole steps of a scale shared by `blocksPerScale` consecutive blocks of a row, as the K-quants
 * keep their minimums (`−dmin · m`, a 4- or 6-bit `m` per sub-block and one `dmin` per super-block):
 * `offsets[i] = −(scales[⌊i / blocksPerScale⌋] · steps[i])` exactly, in float32. The graph then stores a few bits
 * per block instead of a float.
 */
export interface BlockMinima {
  /** Blocks per scale, dividing the blocks of a row. */
  readonly blocksPerScale: number;
  /** `[rows · blocks / blocksPerScale]`. */
  readonly scales: Float32Array;
  /** `[rows · blocks]`, whole steps of the block's scale. */
  readonly steps: Uint8Array;
}

/** A weight matrix: float32 row-major `[rows, cols]`, or block-quantized. */
export type WeightMatrix = Float32Array | BlockQuantizedMatrix;

/** Blocks per row. */
export function blocksPerRow(m: Pick<BlockQuantizedMatrix, 'cols' | 'blockSize'>): number {
  return m.cols / m.blockSize;
}

/** The stored (unsigned) value `index` of row `row`, before the zero point. */
export function quantAt(m: BlockQuantizedMatrix, row: number, index: number): number {
  const rowBytes = (m.cols * m.bits) / 8;
  if (m.bits === 8) return m.data[row * rowBytes + index]!;
  const byte = m.data[row * rowBytes + (index >> 1)]!;
  return index & 1 ? byte >> 4 : byte & 0x0f;
}

/** The float32 values of a block-quantized matrix, row-major `[rows, cols]`, by the formula above. */
export function dequantizeMatrix(m: BlockQuantizedMatrix): Float32Array {
  const out = new Float32Array(m.rows * m.cols);
  const blocks = blocksPerRow(m);
  for (let r = 0; r < m.rows; r++) {
    for (let b = 0; b < blocks; b++) {
      const at = r * blocks + b;
      const scale = m.scales[at]!;
      const zero = m.zeroPoints[at]!;
      const offset = m.offsets?.[at] ?? 0;
      for (let j = 0; j < m.blockSize; j++) {
        const c = b * m.blockSize + j;
        const scaled = Math.fround((quantAt(m, r, c) - zero) * scale);
        // Added whenever offsets exist, as ggml adds its minimum: −0 + 0 is +0, so skipping a zero offset is not exact.
        out[r * m.cols + c] = m.offsets ? Math.fround(scaled + offset) : scaled;
      }
    }
  }
  return out;
}

/** Throws unless the arrays of `m` have the lengths its shape needs, naming `what`. */
export function checkBlockQuantized(m: BlockQuantizedMatrix, what: string): void {
  if (m.cols % m.blockSize !== 0) throw new Error(`${what}: ${m.cols} columns do not fill blocks of ${m.blockSize}`);
  const blocks = m.rows * blocksPerRow(m);
  const expect = (name: string, actual: number, wanted: number): void => {
    if (actual !== wanted) throw new Error(`${what}: ${name} has ${actual} entries, expected ${wanted}`);
  };
  expect('data', m.data.length, (m.rows * m.cols * m.bits) / 8);
  expect('scales', m.scales.length, blocks);
  expect('zeroPoints', m.zeroPoints.length, blocks);
  if (m.offsets) expect('offsets', m.offsets.length, blocks);
  if (m.minima) {
    if (!m.offsets) throw new Error(`${what}: minima without the offsets they make`);
    if (blocksPerRow(m) % m.minima.blocksPerScale !== 0)
      throw new Error(`${what}: ${blocksPerRow(m)} blocks a row do not fill runs of ${m.minima.blocksPerScale}`);
    expect('minima.steps', m.minima.steps.length, blocks);
    expect('minima.scales', m.minima.scales.length, blocks / m.minima.blocksPerScale);
  }
}

/**
 * Rows `[start, start + count)` of a matrix, stored as it is: a block-quantized row holds its own blocks, so the
 * rows of a fused matrix (q/k/v, gate/up) come apart without dequantizing.
 */
export function sliceRows(m: WeightMatrix, cols: number, start: number, count: number): WeightMatrix {
  if (m instanceof Float32Array) return m.slice(start * cols, (start + count) * cols);
  const blocks = blocksPerRow(m);
  const rowBytes = (m.cols * m.bits) / 8;
  const span = <T extends Uint8Array | Float32Array>(a: T, per: number): T =>
    a.slice(start * per, (start + count) * per) as T;
  return {
    ...m,
    rows: count,
    data: span(m.data, rowBytes),
    scales: span(m.scales, blocks),
    zeroPoints: span(m.zeroPoints, blocks),
    ...(m.offsets && { offsets: span(m.offsets, blocks) }),
    ...(m.minima && {
      minima: {
        blocksPerScale: m.minima.blocksPerScale,
        scales: span(m.minima.scales, blocks / m.minima.blocksPerScale),
        steps: span(m.minima.steps, blocks),
      },
    }),
  };
}
