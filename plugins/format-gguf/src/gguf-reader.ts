import { closeSync, fstatSync, openSync, readSync } from 'node:fs';

/** GGUF metadata value types, by their numbers in the file. */
export const GgufValueType = {
  uint8: 0,
  int8: 1,
  uint16: 2,
  int16: 3,
  uint32: 4,
  int32: 5,
  float32: 6,
  bool: 7,
  string: 8,
  array: 9,
  uint64: 10,
  int64: 11,
  float64: 12,
} as const;

/** A metadata value: numbers (64-bit integers as bigint), booleans, strings, or arrays of them. */
export type GgufValue = number | bigint | boolean | string | GgufValue[];

/** One tensor's entry in the GGUF header. */
export interface GgufTensorInfo {
  name: string;
  /** ggml order: innermost (row length) first. */
  dims: number[];
  /** ggml type number (`GGML_TYPE_NAMES`). */
  type: number;
  /** Absolute byte offset in the file. */
  offset: number;
  elements: number;
}

/** The parsed header of a GGUF file; tensor data stay on disk until read. */
export interface GgufFile {
  path: string;
  version: number;
  metadata: Map<string, GgufValue>;
  tensors: GgufTensorInfo[];
  alignment: number;
  dataOffset: number;
  fileSize: number;
}

/** A GGUF file that cannot be parsed (truncated, wrong magic, an unknown value type …). */
export class GgufFormatError extends Error {
  constructor(path: string, message: string) {
    super(`${path}: ${message}`);
    this.name = 'GgufFormatError';
  }
}

const MAGIC = 0x46554747; // "GGUF" little-endian
const CHUNK = 1 << 20;

// Reads the header through a growing window, so a multi-gigabyte file is never held whole.
class HeaderCursor {
  private buf = Buffer.alloc(0);
  private bufStart = 0;
  pos = 0;

  constructor(
    private readonly fd: number,
    private readonly size: number,
    private readonly path: string,
  ) {}

  private need(n: number): number {
    if (this.pos + n > this.size)
      throw new GgufFormatError(this.path, `truncated: needs ${this.pos + n} bytes, file has ${this.size}`);
    const end = this.bufStart + this.buf.length;
    if (this.pos < this.bufStart || this.pos + n > end) {
      const len = Math.min(Math.max(n, CHUNK), this.size - this.pos);
      const next = Buffer.alloc(len);
      readSync(this.fd, next, 0, len, this.pos);
      this.buf = next;
      this.bufStart = this.pos;
    }
    const at = this.pos - this.bufStart;
    this.pos += n;
    return at;
  }

  // `need` may swap the buffer, so it runs before `this.buf` is read.
  u8(): number {
    const at = this.need(1);
    return this.buf.readUInt8(at);
  }
  i8(): number {
    const at = this.need(1);
    return this.buf.readInt8(at);
  }
  u16(): number {
    const at = this.need(2);
    return this.buf.readUInt16LE(at);
  }
  i16(): number {
    const at = this.need(2);
    return this.buf.readInt16LE(at);
  }
  u32(): number {
    const at = this.need(4);
    return this.buf.readUInt32LE(at);
  }
  i32(): number {
    const at = this.need(4);
    return this.buf.readInt32LE(at);
  }
  f32(): number {
    const at = this.need(4);
    return this.buf.readFloatLE(at);
  }
  f64(): number {
    const at = this.need(8);
    return this.buf.readDoubleLE(at);
  }
  u64(): bigint {
    const at = this.need(8);
    return this.buf.readBigUInt64LE(at);
  }
  i64(): bigint {
    const at = this.need(8);
    return this.buf.readBigInt64LE(at);
  }
  /** A u64 that must fit a JS number (counts, offsets). */
  count(what: string): number {
    const v = this.u64();
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new GgufFormatError(this.path, `${what} ${v} is out of range`);
    return Number(v);
  }
  str(): string {
    const n = this.count('string length');
    if (n > this.size)
      throw new GgufFormatError(this.path, `string of ${n} bytes at ${this.pos - 8} runs past the end`);
    const at = this.need(n);
    return this.buf.toString('utf8', at, at + n);
  }
}

/** Parses a GGUF (v2 or v3) header: metadata of every type (arrays included), tensor infos, alignment, data offset. */
export function readGguf(path: string): GgufFile {
  const fd = openSync(path, 'r');
  try {
    const size = fstatSync(fd).size;
    const c = new HeaderCursor(fd, size, path);
    const magic = c.u32();
    if (magic !== MAGIC) throw new GgufFormatError(path, 'not a GGUF file (bad magic)');
    const version = c.u32();
    if (version !== 2 && version !== 3) {
      throw new GgufFormatError(path, `GGUF version ${version} (only versions 2 and 3 are supported)`);
    }
    const tensorCount = c.count('tensor count');
    const kvCount = c.count('metadata count');
    const metadata = new Map<string, GgufValue>();
    for (let i = 0; i < kvCount; i++) {
      const key = c.str();
      const type = c.u32();
      metadata.set(key, readValue(c, type, path, key));
    }
    const alignmentValue = metadata.get('general.alignment');
    const alignment = alignmentValue === undefined ? 32 : Number(alignmentValue);
    if (!Number.isInteger(alignment) || alignment <= 0 || (alignment & (alignment - 1)) !== 0) {
      throw new GgufFormatError(path, `general.alignment ${String(alignmentValue)} is not a power of two`);
    }
    const infos: Omit<GgufTensorInfo, 'offset'>[] = [];
    const relOffsets: number[] = [];
    for (let i = 0; i < tensorCount; i++) {
      const name = c.str();
      const nDims = c.u32();
      if (nDims > 8) throw new GgufFormatError(path, `tensor ${name} has ${nDims} dims`);
      const dims: number[] = [];
      for (let d = 0; d < nDims; d++) dims.push(c.count(`tensor ${name} dim`));
      const type = c.u32();
      relOffsets.push(c.count(`tensor ${name} offset`));
      infos.push({ name, dims, type, elements: dims.reduce((a, b) => a * b, 1) });
    }
    const dataOffset = Math.ceil(c.pos / alignment) * alignment;
    const tensors = infos.map((t, i) => ({ ...t, offset: dataOffset + relOffsets[i]! }));
    return { path, version, metadata, tensors, alignment, dataOffset, fileSize: size };
  } finally {
    closeSync(fd);
  }
}

function readValue(c: HeaderCursor, type: number, path: string, key: string): GgufValue {
  switch (type) {
    case GgufValueType.uint8:
      return c.u8();
    case GgufValueType.int8:
      return c.i8();
    case GgufValueType.uint16:
      return c.u16();
    case GgufValueType.int16:
      return c.i16();
    case GgufValueType.uint32:
      return c.u32();
    case GgufValueType.int32:
      return c.i32();
    case GgufValueType.float32:
      return c.f32();
    case GgufValueType.bool:
      return c.u8() !== 0;
    case GgufValueType.string:
      return c.str();
    case GgufValueType.uint64:
      return c.u64();
    case GgufValueType.int64:
      return c.i64();
    case GgufValueType.float64:
      return c.f64();
    case GgufValueType.array: {
      const elemType = c.u32();
      const n = c.count(`${key} array length`);
      const out: GgufValue[] = new Array<GgufValue>(n);
      for (let i = 0; i < n; i++) out[i] = readValue(c, elemType, path, key);
      return out;
    }
    default:
      throw new GgufFormatError(path, `metadata ${key} has unknown value type ${type}`);
  }
}
