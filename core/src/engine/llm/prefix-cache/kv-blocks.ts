import { KvBatch, type KvArray, type KvLayer, type KvLayout } from '../generation/kv-batch.js';

/**
 * A block of a prefix cache holds the KV of `blockTokens` consecutive tokens of one sequence, every layer, as one
 * array laid out `[layer][key, value][kvHead][token][dim]`, so a block is one allocation that copies, measures and
 * serializes as a unit.
 */

/** Elements in one block of `blockTokens` tokens. */
export function blockElements(layout: KvLayout, blockTokens: number): number {
  return layout.numLayers * 2 * layout.numKvHeads * blockTokens * layout.headDim;
}

/** Bytes in one block's KV. */
export function blockBytes(layout: KvLayout, blockTokens: number): number {
  return blockElements(layout, blockTokens) * (layout.dtype === 'float16' ? 2 : 4);
}

/** A new, zeroed block array. */
export function allocateBlock(layout: KvLayout, blockTokens: number): KvArray {
  const n = blockElements(layout, blockTokens);
  return layout.dtype === 'float16' ? new Uint16Array(n) : new Float32Array(n);
}

/** Copies tokens `first .. first + blockTokens` of row `row` of `kv` (token 0 is the row's first real token) into a new block. */
export function blockFromRow(kv: KvBatch, row: number, first: number, blockTokens: number): KvArray {
  const { numKvHeads: H, headDim: D } = kv.layout;
  const len = kv.lengths[row]!;
  if (first < 0 || first + blockTokens > len)
    throw new Error(`tokens ${first}..${first + blockTokens} are outside row ${row}, which holds ${len}`);
  const block = allocateBlock(kv.layout, blockTokens);
  const P = kv.pastLength;
  const span = blockTokens * D;
  kv.layers.forEach((layer, l) => {
    [layer.key, layer.value].forEach((src, kind) => {
      for (let h = 0; h < H; h++) {
        const from = ((row * H + h) * P + (P - len + first)) * D;
        block.set(src.subarray(from, from + span), ((l * 2 + kind) * H + h) * blockTokens * D);
      }
    });
  });
  return block;
}

/**
 * The past of a prefill whose rows start from cached blocks: row r holds the tokens of `rows[r]` (its blocks in
 * order; none is an empty row), left-padded to the longest row as {@link KvBatch} expects.
 */
export function pastFromBlocks(layout: KvLayout, rows: readonly (readonly KvArray[])[], blockTokens: number): KvBatch {
  const { numKvHeads: H, headDim: D } = layout;
  const lengths = rows.map((blocks) => blocks.length * blockTokens);
  const P = Math.max(0, ...lengths);
  const span = blockTokens * D;
  const layers: KvLayer[] = [];
  for (let l = 0; l < layout.numLayers; l++) {
    const size = rows.length * H * P * D;
    const key = layout.dtype === 'float16' ? new Uint16Array(size) : new Float32Array(size);
    const value = layout.dtype === 'float16' ? new Uint16Array(size) : new Float32Array(size);
    rows.forEach((blocks, r) => {
      const pad = P - lengths[r]!;
      blocks.forEach((block, b) => {
        [key, value].forEach((dst, kind) => {
          for (let h = 0; h < H; h++) {
            const from = ((l * 2 + kind) * H + h) * blockTokens * D;
            dst.set(block.subarray(from, from + span), ((r * H + h) * P + pad + b * blockTokens) * D);
          }
        });
      });
    });
    layers.push({ key, value });
  }
  return KvBatch.fromTensors(layout, lengths, P, layers);
}
