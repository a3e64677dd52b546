// Writes GGUF bytes field by field, checking nothing: counts, lengths, dims and offsets are whatever the test
// declares, so a test can write exactly the lie it wants the reader to catch.

/** A metadata value's type number and a writer for its bytes. */
export interface RawValue {
  type: number;
  write(b: GgufBytes): void;
}

/** A tensor info as declared: any dims, type number and relative offset. */
export interface RawTensorInfo {
  name: string;
  dims: readonly (number | bigint)[];
  type: number;
  offset: number | bigint;
  /** Declared dimension count; `dims.length` unless given. */
  nDims?: number;
}

/** Little-endian GGUF fields, appended in order. */
export class GgufBytes {
  private readonly parts: Buffer[] = [];
  length = 0;

  raw(b: Buffer): this {
    this.parts.push(b);
    this.length += b.length;
    return this;
  }
  u8(v: number): this {
    return this.raw(Buffer.from([v]));
  }
  u32(v: number): this {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(v);
    return this.raw(b);
  }
  f32(v: number): this {
    const b = Buffer.alloc(4);
    b.writeFloatLE(v);
    return this.raw(b);
  }
  u64(v: number | bigint): this {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(BigInt(v));
    return this.raw(b);
  }
  /** A string: its byte length (or the declared one) and its bytes. */
  str(s: string, declaredLength?: number | bigint): this {
    const bytes = Buffer.from(s, 'utf8');
    return this.u64(declaredLength ?? bytes.length).raw(bytes);
  }
  kv(key: string, value: RawValue): this {
    this.str(key).u32(value.type);
    value.write(this);
    return this;
  }
  tensor(t: RawTensorInfo): this {
    this.str(t.name).u32(t.nDims ?? t.dims.length);
    for (const d of t.dims) this.u64(d);
    return this.u32(t.type).u64(t.offset);
  }
  /** Zeros up to the next multiple of `alignment`. */
  pad(alignment = 32): this {
    return this.raw(Buffer.alloc((alignment - (this.length % alignment)) % alignment));
  }
  zeros(n: number): this {
    return this.raw(Buffer.alloc(n));
  }
  bytes(): Buffer {
    return Buffer.concat(this.parts);
  }
}

/** Metadata values. */
export const v = {
  u32: (n: number): RawValue => ({ type: 4, write: (b) => b.u32(n) }),
  u64: (n: number | bigint): RawValue => ({ type: 10, write: (b) => b.u64(n) }),
  f32: (n: number): RawValue => ({ type: 6, write: (b) => b.f32(n) }),
  str: (s: string, declaredLength?: number | bigint): RawValue => ({
    type: 8,
    write: (b) => b.str(s, declaredLength),
  }),
  /** An array of `elemType` declaring `length` elements, of which `elems` are written. */
  arr: (elemType: number, length: number | bigint, elems: readonly RawValue[] = []): RawValue => ({
    type: 9,
    write: (b) => {
      b.u32(elemType).u64(length);
      for (const e of elems) e.write(b);
    },
  }),
  /** Any type number, followed by `bytes` zero bytes. */
  typed: (type: number, bytes = 8): RawValue => ({ type, write: (b) => b.zeros(bytes) }),
};

/** A GGUF header: magic, version, the declared counts (the real ones unless given), metadata, tensor infos. */
export function ggufHeader(
  spec: {
    version?: number;
    tensorCount?: number | bigint;
    kvCount?: number | bigint;
    metadata?: readonly [string, RawValue][];
    tensors?: readonly RawTensorInfo[];
  } = {},
): GgufBytes {
  const metadata = spec.metadata ?? [];
  const tensors = spec.tensors ?? [];
  const b = new GgufBytes()
    .raw(Buffer.from('GGUF', 'latin1'))
    .u32(spec.version ?? 3)
    .u64(spec.tensorCount ?? tensors.length)
    .u64(spec.kvCount ?? metadata.length);
  for (const [key, value] of metadata) b.kv(key, value);
  for (const t of tensors) b.tensor(t);
  return b;
}
