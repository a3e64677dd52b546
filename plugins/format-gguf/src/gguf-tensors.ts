import { closeSync, openSync, readSync } from 'node:fs';
import type { BlockQuantizedMatrix } from '@nucleus/sdk/llm';
import { dequantizeGgml } from './ggml-dequant.js';
import { unpackQ2_K, unpackQ3_K, unpackQ4_K, unpackQ5_K, unpackQ6_K } from './ggml-k-quants.js';
import {
  packBlocks,
  unpackQ4_0,
  unpackQ4_1,
  unpackQ5_0,
  unpackQ5_1,
  unpackQ8_0,
  type UnpackedBlocks,
} from './ggml-quants.js';
import { GgmlType, ggmlLayout, ggmlTypeName, UnsupportedTensorTypeError } from './ggml-types.js';
import { GgufFormatError, type GgufFile, type GgufTensorInfo } from './gguf-reader.js';

export { GGML_TYPE_NAMES, ggmlTypeName } from './ggml-types.js';
export { halfToFloat } from './ggml-half.js';

/**
 * The types the Llama loader takes today (float weights, Q8_0): it widens every weight to float32. Every type in
 * `SUPPORTED_GGML_TYPES` can be read; this list stays until the loader keeps quantized weights quantized.
 */
export const GGML_READABLE_TYPES: readonly number[] = [GgmlType.F32, GgmlType.F16, GgmlType.Q8_0];

const UNPACK: Readonly<Record<number, (raw: Uint8Array, blocks: number) => UnpackedBlocks>> = {
  [GgmlType.Q4_0]: unpackQ4_0,
  [GgmlType.Q4_1]: unpackQ4_1,
  [GgmlType.Q5_0]: unpackQ5_0,
  [GgmlType.Q5_1]: unpackQ5_1,
  [GgmlType.Q8_0]: unpackQ8_0,
  [GgmlType.Q2_K]: unpackQ2_K,
  [GgmlType.Q3_K]: unpackQ3_K,
  [GgmlType.Q4_K]: unpackQ4_K,
  [GgmlType.Q5_K]: unpackQ5_K,
  [GgmlType.Q6_K]: unpackQ6_K,
};

/**
 * The stored bytes of one tensor, in one positioned read. Throws `UnsupportedTensorTypeError` for a type this
 * plugin cannot read, and `GgufFormatError` when its rows do not fill whole blocks or it lies outside the file.
 */
export function readTensorBytes(file: GgufFile, tensor: GgufTensorInfo): Uint8Array {
  const { blockBytes, blockElems } = ggmlLayout(tensor.name, tensor.type);
  const rowLength = tensor.dims[0] ?? 1;
  if (rowLength % blockElems !== 0 || tensor.elements % blockElems !== 0) {
    throw new GgufFormatError(
      file.path,
      `tensor ${tensor.name}: rows of ${rowLength} values do not fill ${ggmlTypeName(tensor.type)} blocks of ${blockElems}`,
    );
  }
  const bytes = (tensor.elements / blockElems) * blockBytes;
  if (tensor.offset < file.dataOffset || tensor.offset + bytes > file.fileSize) {
    throw new GgufFormatError(
      file.path,
      `tensor ${tensor.name} (${bytes} bytes at ${tensor.offset}) lies outside the data section ` +
        `[${file.dataOffset}, ${file.fileSize})`,
    );
  }
  const raw = Buffer.alloc(bytes);
  const fd = openSync(file.path, 'r');
  try {
    // One read; the loop only continues a read the OS cut short (over 2 GiB at once).
    for (let done = 0; done < bytes; ) {
      const n = readSync(fd, raw, done, Math.min(bytes - done, 1 << 30), tensor.offset + done);
      if (n <= 0) throw new GgufFormatError(file.path, `short read in tensor ${tensor.name}`);
      done += n;
    }
  } finally {
    closeSync(fd);
  }
  return raw;
}

/** Reads one tensor of any supported type and returns its values as float32, exactly as ggml dequantizes them. */
export function readTensorF32(file: GgufFile, tensor: GgufTensorInfo): Float32Array {
  return dequantizeGgml(tensor.type, readTensorBytes(file, tensor), tensor.elements, tensor.name);
}

/**
 * A quantized tensor's bytes (`raw`, `rows · cols` values, ggml order: row after row of `cols`) as a
 * `BlockQuantizedMatrix`, without changing a value: `dequantizeMatrix` of the result equals ggml's dequantization
 * bit for bit. Q4_0 → 4 bits/32, zero point 8; Q4_1 → 4/32 with offset m; Q5_0 → 8/32, zero point 16;
 * Q5_1 → 8/32 with offset m; Q8_0 → 8/32, zero point 128 (stored q + 128); Q2_K → 4/16, scale d·sc, offset
 * −dmin·m; Q3_K → 4/16, scale d·(sc − 32), zero point 4; Q4_K → 4/32 and Q5_K → 8/32, scale d·sc, offset
 * −dmin·m; Q6_K → 8/16, scale d·sc, zero point 32. Float types throw `UnsupportedTensorTypeError` (read them
 * with `readTensorF32`).
 */
export function toBlockQuantized(
  name: string,
  type: number,
  raw: Uint8Array,
  rows: number,
  cols: number,
): BlockQuantizedMatrix {
  const unpack = UNPACK[type];
  if (!unpack) {
    ggmlLayout(name, type); // an unknown type says so first
    throw new UnsupportedTensorTypeError(name, type, 'kept block-quantized (it is not a quantized type)');
  }
  const { blockBytes, blockElems } = ggmlLayout(name, type);
  if (cols % blockElems !== 0) {
    throw new Error(`tensor ${name}: rows of ${cols} values do not fill ${ggmlTypeName(type)} blocks of ${blockElems}`);
  }
  const blocks = (rows * cols) / blockElems;
  if (raw.length < blocks * blockBytes) {
    throw new Error(
      `tensor ${name}: ${rows}×${cols} ${ggmlTypeName(type)} needs ${blocks * blockBytes} bytes, got ${raw.length}`,
    );
  }
  return packBlocks(unpack(raw, blocks), rows, cols, ggmlTypeName(type));
}
