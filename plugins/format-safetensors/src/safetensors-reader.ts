import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { NucleusError } from '@nucleus/sdk';
import { bfloat16FromBits, float16FromBits } from '@nucleus/sdk/onnx';

/** A safetensors file Nucleus cannot read: a 400 naming the file and what is wrong with it. */
export class SafetensorsFormatError extends NucleusError {
  constructor(path: string, message: string) {
    super(400, 'unsupported_model', `${path}: ${message}`);
    this.name = 'SafetensorsFormatError';
  }
}

/** Bytes per element of every dtype the safetensors format defines; those the weights may use are in `FLOAT_DTYPES`. */
const DTYPE_BYTES: Readonly<Record<string, number>> = {
  BOOL: 1,
  U8: 1,
  I8: 1,
  F8_E4M3: 1,
  F8_E5M2: 1,
  I16: 2,
  U16: 2,
  F16: 2,
  BF16: 2,
  I32: 4,
  U32: 4,
  F32: 4,
  I64: 8,
  U64: 8,
  F64: 8,
};

/** The dtypes Nucleus reads weights in. */
export const FLOAT_DTYPES: readonly string[] = ['F32', 'F16', 'BF16'];

/** The safetensors crate refuses headers above 100 MB; a larger one is an attack or not safetensors at all. */
const MAX_HEADER_BYTES = 100_000_000;

/** One tensor of a safetensors file. */
export interface SafetensorsTensor {
  name: string;
  dtype: string;
  shape: number[];
  /** Absolute byte offset of its data in the file. */
  offset: number;
  byteLength: number;
}

/** The parsed header of a safetensors file; the data stays on disk until read by offset. */
export interface SafetensorsFile {
  path: string;
  fileSize: number;
  tensors: Map<string, SafetensorsTensor>;
  /** The header's `__metadata__` (string to string). */
  metadata: Record<string, string>;
}

/**
 * Reads and checks the header of a safetensors file (8-byte little-endian length, then JSON): every tensor's dtype,
 * shape and byte range are checked against each other and against the file's size, so a truncated or hostile file
 * is refused here, naming the problem, before anything is allocated for its data.
 */
export function readSafetensors(path: string): SafetensorsFile {
  const fd = openSync(path, 'r');
  try {
    const fileSize = fstatSync(fd).size;
    const fail = (message: string): never => {
      throw new SafetensorsFormatError(path, message);
    };
    if (fileSize < 8)
      fail(`truncated header: the file has ${fileSize} bytes, fewer than the 8-byte header length it starts with`);
    const lengthBytes = Buffer.alloc(8);
    readSync(fd, lengthBytes, 0, 8, 0);
    const declared = lengthBytes.readBigUInt64LE(0);
    if (declared > BigInt(fileSize - 8))
      fail(
        `the header length ${declared} is larger than the file (${fileSize} bytes): the file is truncated or not safetensors`,
      );
    const headerLength = Number(declared);
    if (headerLength > MAX_HEADER_BYTES)
      fail(`the header of ${headerLength} bytes exceeds the ${MAX_HEADER_BYTES}-byte limit`);
    const headerBytes = Buffer.alloc(headerLength);
    readSync(fd, headerBytes, 0, headerLength, 8);
    let header: unknown;
    try {
      header = JSON.parse(headerBytes.toString('utf8'));
    } catch (err) {
      fail(`the header is not valid JSON (${(err as Error).message})`);
    }
    if (typeof header !== 'object' || header === null || Array.isArray(header)) fail('the header is not a JSON object');
    const dataStart = 8 + headerLength;
    const dataSize = fileSize - dataStart;
    const tensors = new Map<string, SafetensorsTensor>();
    let metadata: Record<string, string> = {};
    for (const [name, value] of Object.entries(header as Record<string, unknown>)) {
      if (name === '__metadata__') {
        if (typeof value === 'object' && value !== null) metadata = value as Record<string, string>;
        continue;
      }
      tensors.set(name, checkEntry(name, value, dataStart, dataSize, fail));
    }
    // The format forbids overlapping tensors; overlap means a crafted file whose sizes cannot be trusted.
    const sorted = [...tensors.values()].sort((a, b) => a.offset - b.offset);
    for (let i = 1; i < sorted.length; i++) {
      const previous = sorted[i - 1]!;
      if (sorted[i]!.offset < previous.offset + previous.byteLength)
        fail(`tensors ${previous.name} and ${sorted[i]!.name} overlap`);
    }
    return { path, fileSize, tensors, metadata };
  } finally {
    closeSync(fd);
  }
}

function checkEntry(
  name: string,
  value: unknown,
  dataStart: number,
  dataSize: number,
  fail: (message: string) => never,
): SafetensorsTensor {
  const entry = value as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
  if (typeof value !== 'object' || value === null) fail(`tensor ${name} is not an object in the header`);
  const dtype = entry.dtype;
  if (typeof dtype !== 'string') fail(`tensor ${name} has no dtype`);
  const size = DTYPE_BYTES[dtype as string];
  if (size === undefined)
    fail(
      `tensor ${name} has unknown dtype ${JSON.stringify(dtype)} (safetensors defines ${Object.keys(DTYPE_BYTES).join(', ')})`,
    );
  const shape = entry.shape;
  if (!Array.isArray(shape) || shape.some((d) => typeof d !== 'number' || !Number.isSafeInteger(d) || d < 0))
    fail(`tensor ${name} has shape ${JSON.stringify(shape)}, not a list of non-negative integers`);
  const offsets = entry.data_offsets;
  if (
    !Array.isArray(offsets) ||
    offsets.length !== 2 ||
    offsets.some((o) => typeof o !== 'number' || !Number.isSafeInteger(o) || o < 0)
  )
    fail(`tensor ${name} has data_offsets ${JSON.stringify(offsets)}, not two non-negative integers`);
  const [begin, end] = offsets as [number, number];
  if (end < begin) fail(`tensor ${name} has data_offsets [${begin}, ${end}] that end before they begin`);
  if (end > dataSize)
    fail(
      `tensor ${name} ends at byte ${dataStart + end}, past the end of the file (${dataStart + dataSize} bytes): the file is truncated`,
    );
  const dims = shape as number[];
  const elements = dims.reduce((n, d) => n * d, 1);
  const bytes = elements * (size as number);
  if (bytes !== end - begin)
    fail(
      `tensor ${name}: ${dtype as string} [${dims.join(', ')}] needs ${bytes} bytes, its data_offsets span ${end - begin}`,
    );
  return { name, dtype: dtype as string, shape: dims, offset: dataStart + begin, byteLength: end - begin };
}

// Bytes read per call: a multi-GB tensor is converted a slice at a time, never held twice.
const CHUNK_BYTES = 16 << 20;

let halfTable: Float32Array | undefined;
let bfloatTable: Float32Array | undefined;

function tableOf(dtype: 'F16' | 'BF16'): Float32Array {
  if (dtype === 'F16') {
    if (!halfTable) {
      halfTable = new Float32Array(65536);
      for (let h = 0; h < 65536; h++) halfTable[h] = float16FromBits(h);
    }
    return halfTable;
  }
  if (!bfloatTable) {
    bfloatTable = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) bfloatTable[h] = bfloat16FromBits(h);
  }
  return bfloatTable;
}

/** The values of an F32, F16 or BF16 tensor as float32, read by offset from its file (exact: every one fits). */
export function readTensorF32(file: SafetensorsFile, tensor: SafetensorsTensor): Float32Array {
  if (!FLOAT_DTYPES.includes(tensor.dtype))
    throw new SafetensorsFormatError(
      file.path,
      `tensor ${tensor.name} is ${tensor.dtype}; weights are read in ${FLOAT_DTYPES.join(', ')}`,
    );
  const size = DTYPE_BYTES[tensor.dtype]!;
  const out = new Float32Array(tensor.byteLength / size);
  const fd = openSync(file.path, 'r');
  try {
    const chunk = Buffer.alloc(Math.min(CHUNK_BYTES, tensor.byteLength));
    const table = tensor.dtype === 'F32' ? undefined : tableOf(tensor.dtype as 'F16' | 'BF16');
    let done = 0;
    while (done < tensor.byteLength) {
      const want = Math.min(chunk.length, tensor.byteLength - done);
      const got = readSync(fd, chunk, 0, want, tensor.offset + done);
      if (got !== want)
        throw new SafetensorsFormatError(
          file.path,
          `tensor ${tensor.name} could not be read: the file changed or is truncated`,
        );
      const at = done / size;
      if (table) for (let i = 0; i < want / 2; i++) out[at + i] = table[chunk.readUInt16LE(2 * i)]!;
      else for (let i = 0; i < want / 4; i++) out[at + i] = chunk.readFloatLE(4 * i);
      done += want;
    }
  } finally {
    closeSync(fd);
  }
  return out;
}
