import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { NucleusError } from '@nucleus/sdk';
import { GGML_BLOCK_LAYOUTS } from './ggml-block-layouts.js';

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

/**
 * A GGUF file that cannot be parsed or does not hold together (truncated, wrong magic, an unknown value or tensor
 * type, counts and sizes the file cannot hold …): the message names the problem. Its code is that of every model
 * source Nucleus cannot load as it is (`unsupported_model`, 422), so that `nucleus serve` exits 2 on it like on any
 * other bad source.
 */
export class GgufFormatError extends NucleusError {
  constructor(path: string, message: string) {
    super(400, 'unsupported_model', `${path}: ${message}`);
    this.name = 'GgufFormatError';
  }
}

const MAGIC = 0x46554747; // "GGUF" little-endian
const CHUNK = 1 << 20;
/** ggml's GGML_MAX_DIMS. */
const MAX_DIMS = 4;
/** Arrays of arrays are legal GGUF; deeper nesting than this is only ever an attack on the stack. */
const MAX_ARRAY_DEPTH = 4;

// The fewest bytes a value of each type takes: what every declared count is checked against before anything loops
// or allocates by it, so a few hundred bytes can never declare work in proportion to a number they hold.
const VALUE_BYTES: Readonly<Record<number, number>> = {
  [GgufValueType.uint8]: 1,
  [GgufValueType.int8]: 1,
  [GgufValueType.uint16]: 2,
  [GgufValueType.int16]: 2,
  [GgufValueType.uint32]: 4,
  [GgufValueType.int32]: 4,
  [GgufValueType.float32]: 4,
  [GgufValueType.bool]: 1,
  [GgufValueType.string]: 8, // its length; the bytes are checked when it is read
  [GgufValueType.array]: 12, // element type and length
  [GgufValueType.uint64]: 8,
  [GgufValueType.int64]: 8,
  [GgufValueType.float64]: 8,
};
const VALUE_TYPE_NAMES = Object.fromEntries(Object.entries(GgufValueType).map(([k, v]) => [v, k]));
/** Key length, value type, and the smallest value. */
const KV_MIN_BYTES = 8 + 4 + 1;
/** Name length, dim count, type, offset. */
const TENSOR_INFO_MIN_BYTES = 8 + 4 + 4 + 8;

// Reads the header through a growing window, so a multi-gigabyte file is never held whole.
class HeaderCursor {
  private buf = Buffer.alloc(0);
  private bufStart = 0;
  pos = 0;
  /** What is being read, for the message when the file ends in the middle of it. */
  context = 'the header';

  constructor(
    private readonly fd: number,
    readonly size: number,
    private readonly path: string,
  ) {}

  fail(message: string): GgufFormatError {
    return new GgufFormatError(this.path, message);
  }

  remaining(): number {
    return this.size - this.pos;
  }

  private need(n: number): number {
    if (n > this.remaining())
      throw this.fail(`truncated: ${this.context} needs ${this.pos + n} bytes, the file has ${this.size}`);
    const end = this.bufStart + this.buf.length;
    if (this.pos < this.bufStart || this.pos + n > end) {
      const len = Math.min(Math.max(n, CHUNK), this.remaining());
      const next = Buffer.alloc(len);
      const got = readSync(this.fd, next, 0, len, this.pos);
      if (got < len) throw this.fail(`short read at byte ${this.pos + got} in ${this.context} (is the file changing?)`);
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
  /**
   * A count of `items` that each take at least `minBytes` of the bytes left: refused, naming who declared it, when
   * the file is too short to hold that many.
   */
  count(declarer: string, items: string, minBytes: number): number {
    const v = this.u64();
    const room = this.remaining();
    if (v > BigInt(Math.floor(room / minBytes))) {
      throw this.fail(
        `${declarer} declares ${v} ${items} (at least ${BigInt(minBytes) * v} bytes), but only ${room} bytes of the file remain: it is truncated or the count is corrupt`,
      );
    }
    return Number(v);
  }
  str(what: string): string {
    const lengthAt = this.pos;
    const v = this.u64();
    if (v > BigInt(this.remaining())) {
      throw this.fail(
        `${what}: a string of ${v} bytes at byte ${lengthAt} runs past the end of the file (${this.size} bytes)`,
      );
    }
    const n = Number(v);
    const at = this.need(n);
    return this.buf.toString('utf8', at, at + n);
  }
}

/**
 * Parses a GGUF (v2 or v3) header: metadata of every type (arrays included), tensor infos, alignment, data offset.
 * Every count, length and size the file declares is checked against the bytes it actually has before anything is
 * allocated or looped over, and every tensor's data must lie, aligned and without overlap, inside the file: a hostile
 * or truncated file is refused with a `GgufFormatError` naming the problem, in time proportional to its size.
 */
export function readGguf(path: string): GgufFile {
  const fd = openSync(path, 'r');
  try {
    const size = fstatSync(fd).size;
    const c = new HeaderCursor(fd, size, path);
    if (size < 4) throw c.fail(`not a GGUF file (${size} bytes, too short for the magic)`);
    const magic = c.u32();
    if (magic !== MAGIC) throw c.fail('not a GGUF file (bad magic)');
    const version = c.u32();
    if (version !== 2 && version !== 3) {
      const swapped = Buffer.alloc(4);
      swapped.writeUInt32BE(version);
      const bigEndian = swapped.readUInt32LE(0);
      throw c.fail(
        bigEndian === 2 || bigEndian === 3
          ? `a big-endian GGUF (version ${bigEndian}); only little-endian files are supported`
          : `GGUF version ${version} (only versions 2 and 3 are supported)`,
      );
    }
    const tensorCount = c.count('the header', 'tensors', TENSOR_INFO_MIN_BYTES);
    const kvCount = c.count('the header', 'metadata entries', KV_MIN_BYTES);
    if (tensorCount * TENSOR_INFO_MIN_BYTES + kvCount * KV_MIN_BYTES > c.remaining()) {
      throw c.fail(
        `${tensorCount} tensors and ${kvCount} metadata entries need at least ${
          tensorCount * TENSOR_INFO_MIN_BYTES + kvCount * KV_MIN_BYTES
        } bytes, but only ${c.remaining()} bytes of the file remain: it is truncated or a count is corrupt`,
      );
    }
    const metadata = readMetadata(c, kvCount);
    const alignment = alignmentOf(c, metadata.get('general.alignment'));
    const { tensors, dataOffset } = readTensorInfos(c, tensorCount, alignment);
    return { path, version, metadata, tensors, alignment, dataOffset, fileSize: size };
  } finally {
    closeSync(fd);
  }
}

function readMetadata(c: HeaderCursor, kvCount: number): Map<string, GgufValue> {
  const metadata = new Map<string, GgufValue>();
  for (let i = 0; i < kvCount; i++) {
    c.context = `metadata entry ${i + 1} of ${kvCount}`;
    const key = c.str(`the key of metadata entry ${i + 1}`);
    const shown = printable(key);
    if (metadata.has(key)) throw c.fail(`metadata ${shown} appears twice`);
    c.context = `metadata ${shown}`;
    const type = c.u32();
    metadata.set(key, readValue(c, type, shown, 0));
  }
  return metadata;
}

// `key` is the key as messages show it.
function readValue(c: HeaderCursor, type: number, key: string, depth: number): GgufValue {
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
      return c.str(`metadata ${key}`);
    case GgufValueType.uint64:
      return c.u64();
    case GgufValueType.int64:
      return c.i64();
    case GgufValueType.float64:
      return c.f64();
    case GgufValueType.array: {
      const elemType = c.u32();
      const minBytes = VALUE_BYTES[elemType];
      if (minBytes === undefined) throw c.fail(`metadata ${key} is an array of unknown value type ${elemType}`);
      if (elemType === GgufValueType.array && depth + 1 >= MAX_ARRAY_DEPTH)
        throw c.fail(`metadata ${key} nests arrays more than ${MAX_ARRAY_DEPTH} deep`);
      const n = c.count(`metadata ${key}`, `${VALUE_TYPE_NAMES[elemType]} values`, minBytes);
      const out: GgufValue[] = new Array<GgufValue>(n);
      for (let i = 0; i < n; i++) out[i] = readValue(c, elemType, key, depth + 1);
      return out;
    }
    default:
      throw c.fail(`metadata ${key} has unknown value type ${type}`);
  }
}

function alignmentOf(c: HeaderCursor, value: GgufValue | undefined): number {
  const alignment =
    value === undefined ? 32 : typeof value === 'number' || typeof value === 'bigint' ? Number(value) : NaN;
  if (!Number.isInteger(alignment) || alignment <= 0 || alignment > 2 ** 30 || (alignment & (alignment - 1)) !== 0) {
    throw c.fail(`general.alignment ${String(value)} is not a power of two (up to 2^30)`);
  }
  return alignment;
}

interface TensorSpan {
  name: string;
  start: number;
  end: number;
}

function readTensorInfos(
  c: HeaderCursor,
  tensorCount: number,
  alignment: number,
): { tensors: GgufTensorInfo[]; dataOffset: number } {
  const names = new Set<string>();
  const infos: (Omit<GgufTensorInfo, 'offset'> & { rel: bigint; bytes: number })[] = [];
  for (let i = 0; i < tensorCount; i++) {
    c.context = `tensor info ${i + 1} of ${tensorCount}`;
    const name = c.str(`the name of tensor ${i + 1}`);
    const shown = printable(name);
    if (names.has(name)) throw c.fail(`tensor ${shown} appears twice`);
    names.add(name);
    c.context = `tensor ${shown}`;
    const nDims = c.u32();
    if (nDims > MAX_DIMS) throw c.fail(`tensor ${shown} has ${nDims} dimensions (GGUF allows at most ${MAX_DIMS})`);
    const declared: bigint[] = [];
    for (let d = 0; d < nDims; d++) declared.push(c.u64());
    const elements = declared.reduce((n, d) => n * Number(d), 1);
    if (declared.some((d) => d > BigInt(Number.MAX_SAFE_INTEGER)) || !(elements <= Number.MAX_SAFE_INTEGER)) {
      throw c.fail(`tensor ${shown} declares dimensions [${declared.join(', ')}], more than 2^53 values`);
    }
    const dims = declared.map(Number);
    const type = c.u32();
    const layout = GGML_BLOCK_LAYOUTS[type];
    if (!layout) throw c.fail(`tensor ${shown} has unknown ggml type ${type}`);
    if (elements % layout.blockElems !== 0) {
      throw c.fail(
        `tensor ${shown}: [${dims.join(', ')}] is ${elements} values, which do not fill ${layout.name} blocks of ${layout.blockElems}`,
      );
    }
    const rel = c.u64();
    if (rel % BigInt(alignment) !== 0n)
      throw c.fail(`tensor ${shown}: data offset ${rel} is not a multiple of the alignment ${alignment}`);
    infos.push({ name, dims, type, elements, rel, bytes: (elements / layout.blockElems) * layout.blockBytes });
  }
  const dataOffset = Math.ceil(c.pos / alignment) * alignment;
  const spans: TensorSpan[] = [];
  const tensors = infos.map(({ rel, bytes, ...t }) => {
    const start = dataOffset + Number(rel);
    const end = BigInt(dataOffset) + rel + BigInt(bytes);
    if (end > BigInt(c.size)) {
      throw c.fail(
        `tensor ${printable(t.name)} (${GGML_BLOCK_LAYOUTS[t.type]!.name} [${t.dims.join(', ')}], ${bytes} bytes) ends at byte ${end}, ` +
          `past the end of the file (${c.size} bytes): the file is truncated or its header is wrong`,
      );
    }
    if (bytes > 0) spans.push({ name: t.name, start, end: start + bytes });
    return { ...t, offset: start };
  });
  spans.sort((a, b) => a.start - b.start);
  for (let i = 1; i < spans.length; i++) {
    const [a, b] = [spans[i - 1]!, spans[i]!];
    if (b.start < a.end) {
      throw c.fail(
        `tensors ${printable(a.name)} (bytes ${a.start} to ${a.end}) and ${printable(b.name)} (bytes ${b.start} to ${b.end}) overlap`,
      );
    }
  }
  return { tensors, dataOffset };
}

// A key or tensor name as a message shows it: quoted (and cut short) when it is empty, long, or holds control
// characters or spaces, so that a corrupt name cannot garble the message or the terminal it is printed to.
function printable(name: string): string {
  if (name.length <= 80 && /^[^\p{C}\s]+$/u.test(name)) return name;
  return JSON.stringify(name.length > 80 ? `${name.slice(0, 80)}…` : name);
}
