// Writes GGUF files: every metadata value type, any tensor type number, a chosen alignment and version. Tools and
// tests make files with it; the whole file is assembled in memory.
import { writeFileSync } from 'node:fs';

/** A typed metadata value as GGUF stores it. */
export type Meta =
  | { t: 'u8' | 'i8' | 'u16' | 'i16' | 'u32' | 'i32' | 'f32' | 'f64'; v: number }
  | { t: 'u64' | 'i64'; v: bigint }
  | { t: 'bool'; v: boolean }
  | { t: 'str'; v: string }
  | { t: 'arr'; of: Meta['t']; v: Meta[] };

const TYPE_CODE: Record<Meta['t'], number> = {
  u8: 0,
  i8: 1,
  u16: 2,
  i16: 3,
  u32: 4,
  i32: 5,
  f32: 6,
  bool: 7,
  str: 8,
  arr: 9,
  u64: 10,
  i64: 11,
  f64: 12,
};

/** Shorthands for metadata values: `ggufMeta.u32(2)`, `ggufMeta.strs([…])`. */
export const ggufMeta = {
  u32: (v: number): Meta => ({ t: 'u32', v }),
  i32: (v: number): Meta => ({ t: 'i32', v }),
  f32: (v: number): Meta => ({ t: 'f32', v }),
  str: (v: string): Meta => ({ t: 'str', v }),
  bool: (v: boolean): Meta => ({ t: 'bool', v }),
  strs: (v: readonly string[]): Meta => ({ t: 'arr', of: 'str', v: v.map((s) => ({ t: 'str', v: s })) }),
  f32s: (v: readonly number[]): Meta => ({ t: 'arr', of: 'f32', v: v.map((x) => ({ t: 'f32', v: x })) }),
  i32s: (v: readonly number[]): Meta => ({ t: 'arr', of: 'i32', v: v.map((x) => ({ t: 'i32', v: x })) }),
};

/** A tensor to write: ggml dims (innermost first), ggml type number, raw bytes. */
export interface RawTensor {
  name: string;
  dims: number[];
  type: number;
  data: Uint8Array;
}

class Out {
  private chunks: Buffer[] = [];
  length = 0;
  push(b: Buffer): void {
    this.chunks.push(b);
    this.length += b.length;
  }
  u32(v: number): void {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(v);
    this.push(b);
  }
  u64(v: number | bigint): void {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(BigInt(v));
    this.push(b);
  }
  str(s: string): void {
    const bytes = Buffer.from(s, 'utf8');
    this.u64(bytes.length);
    this.push(bytes);
  }
  value(x: Meta): void {
    const b = Buffer.alloc(8);
    switch (x.t) {
      case 'u8':
        b.writeUInt8(x.v);
        return this.push(b.subarray(0, 1));
      case 'i8':
        b.writeInt8(x.v);
        return this.push(b.subarray(0, 1));
      case 'u16':
        b.writeUInt16LE(x.v);
        return this.push(b.subarray(0, 2));
      case 'i16':
        b.writeInt16LE(x.v);
        return this.push(b.subarray(0, 2));
      case 'u32':
        b.writeUInt32LE(x.v);
        return this.push(b.subarray(0, 4));
      case 'i32':
        b.writeInt32LE(x.v);
        return this.push(b.subarray(0, 4));
      case 'f32':
        b.writeFloatLE(x.v);
        return this.push(b.subarray(0, 4));
      case 'f64':
        b.writeDoubleLE(x.v);
        return this.push(b);
      case 'u64':
        b.writeBigUInt64LE(x.v);
        return this.push(b);
      case 'i64':
        b.writeBigInt64LE(x.v);
        return this.push(b);
      case 'bool':
        b.writeUInt8(x.v ? 1 : 0);
        return this.push(b.subarray(0, 1));
      case 'str':
        return this.str(x.v);
      case 'arr':
        this.u32(TYPE_CODE[x.of]);
        this.u64(x.v.length);
        for (const e of x.v) this.value(e);
    }
  }
  pad(alignment: number): void {
    const n = (alignment - (this.length % alignment)) % alignment;
    if (n > 0) this.push(Buffer.alloc(n));
  }
  bytes(): Buffer {
    return Buffer.concat(this.chunks);
  }
}

/** Writes a GGUF file: the header, then each tensor's bytes at its aligned offset. */
export function writeGguf(
  path: string,
  metadata: Record<string, Meta>,
  tensors: readonly RawTensor[],
  options: { version?: number; alignment?: number } = {},
): void {
  const alignment = options.alignment ?? 32;
  const out = new Out();
  out.u32(0x46554747);
  out.u32(options.version ?? 3);
  out.u64(tensors.length);
  out.u64(Object.keys(metadata).length);
  for (const [k, v] of Object.entries(metadata)) {
    out.str(k);
    out.u32(TYPE_CODE[v.t]);
    out.value(v);
  }
  let offset = 0;
  const offsets: number[] = [];
  for (const t of tensors) {
    offset = Math.ceil(offset / alignment) * alignment;
    offsets.push(offset);
    offset += t.data.length;
  }
  tensors.forEach((t, i) => {
    out.str(t.name);
    out.u32(t.dims.length);
    for (const d of t.dims) out.u64(d);
    out.u32(t.type);
    out.u64(offsets[i]!);
  });
  out.pad(alignment);
  const start = out.length;
  tensors.forEach((t, i) => {
    out.push(Buffer.alloc(start + offsets[i]! - out.length));
    out.push(Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength));
  });
  writeFileSync(path, out.bytes());
}
