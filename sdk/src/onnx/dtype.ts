/** An ONNX tensor element type, named the way onnxruntime-node names its tensor types where it has one. */
export type DType =
  | 'float32'
  | 'float16'
  | 'bfloat16'
  | 'float64'
  | 'int8'
  | 'uint8'
  | 'int16'
  | 'uint16'
  | 'int32'
  | 'uint32'
  | 'int64'
  | 'uint64'
  | 'bool'
  | 'string'
  | 'int4'
  | 'uint4'
  | 'float8e4m3fn'
  | 'float8e4m3fnuz'
  | 'float8e5m2'
  | 'float8e5m2fnuz';

/** The JavaScript container that holds a tensor's elements for each dtype (16-bit floats as raw bits, 4-bit ints two per byte). */
export interface DTypeArrayMap {
  float32: Float32Array;
  float16: Uint16Array;
  bfloat16: Uint16Array;
  float64: Float64Array;
  int8: Int8Array;
  uint8: Uint8Array;
  int16: Int16Array;
  uint16: Uint16Array;
  int32: Int32Array;
  uint32: Uint32Array;
  int64: BigInt64Array;
  uint64: BigUint64Array;
  bool: Uint8Array;
  string: string[];
  int4: Uint8Array;
  uint4: Uint8Array;
  float8e4m3fn: Uint8Array;
  float8e4m3fnuz: Uint8Array;
  float8e5m2: Uint8Array;
  float8e5m2fnuz: Uint8Array;
}

/** Any numeric typed array a tensor can hold. */
export type NumericArray = Exclude<DTypeArrayMap[DType], string[]>;

/** A tensor's element storage: a typed array, or an array of strings for `string` tensors. */
export type TensorValues = DTypeArrayMap[DType];

interface DTypeInfo {
  /** `TensorProto.DataType` code. */
  code: number;
  /** Bits per element; 0 for strings. */
  bits: number;
  make: (length: number) => TensorValues;
  fromBuffer?: (buffer: ArrayBuffer, byteOffset: number, length: number) => NumericArray;
}

const info: Record<DType, DTypeInfo> = {
  float32: { code: 1, bits: 32, make: (n) => new Float32Array(n), fromBuffer: (b, o, n) => new Float32Array(b, o, n) },
  uint8: { code: 2, bits: 8, make: (n) => new Uint8Array(n), fromBuffer: (b, o, n) => new Uint8Array(b, o, n) },
  int8: { code: 3, bits: 8, make: (n) => new Int8Array(n), fromBuffer: (b, o, n) => new Int8Array(b, o, n) },
  uint16: { code: 4, bits: 16, make: (n) => new Uint16Array(n), fromBuffer: (b, o, n) => new Uint16Array(b, o, n) },
  int16: { code: 5, bits: 16, make: (n) => new Int16Array(n), fromBuffer: (b, o, n) => new Int16Array(b, o, n) },
  int32: { code: 6, bits: 32, make: (n) => new Int32Array(n), fromBuffer: (b, o, n) => new Int32Array(b, o, n) },
  int64: { code: 7, bits: 64, make: (n) => new BigInt64Array(n), fromBuffer: (b, o, n) => new BigInt64Array(b, o, n) },
  string: { code: 8, bits: 0, make: (n) => new Array<string>(n).fill('') },
  bool: { code: 9, bits: 8, make: (n) => new Uint8Array(n), fromBuffer: (b, o, n) => new Uint8Array(b, o, n) },
  float16: { code: 10, bits: 16, make: (n) => new Uint16Array(n), fromBuffer: (b, o, n) => new Uint16Array(b, o, n) },
  float64: { code: 11, bits: 64, make: (n) => new Float64Array(n), fromBuffer: (b, o, n) => new Float64Array(b, o, n) },
  uint32: { code: 12, bits: 32, make: (n) => new Uint32Array(n), fromBuffer: (b, o, n) => new Uint32Array(b, o, n) },
  uint64: {
    code: 13,
    bits: 64,
    make: (n) => new BigUint64Array(n),
    fromBuffer: (b, o, n) => new BigUint64Array(b, o, n),
  },
  bfloat16: { code: 16, bits: 16, make: (n) => new Uint16Array(n), fromBuffer: (b, o, n) => new Uint16Array(b, o, n) },
  float8e4m3fn: { code: 17, bits: 8, make: (n) => new Uint8Array(n), fromBuffer: (b, o, n) => new Uint8Array(b, o, n) },
  float8e4m3fnuz: {
    code: 18,
    bits: 8,
    make: (n) => new Uint8Array(n),
    fromBuffer: (b, o, n) => new Uint8Array(b, o, n),
  },
  float8e5m2: { code: 19, bits: 8, make: (n) => new Uint8Array(n), fromBuffer: (b, o, n) => new Uint8Array(b, o, n) },
  float8e5m2fnuz: {
    code: 20,
    bits: 8,
    make: (n) => new Uint8Array(n),
    fromBuffer: (b, o, n) => new Uint8Array(b, o, n),
  },
  uint4: { code: 21, bits: 4, make: (n) => new Uint8Array(n), fromBuffer: (b, o, n) => new Uint8Array(b, o, n) },
  int4: { code: 22, bits: 4, make: (n) => new Uint8Array(n), fromBuffer: (b, o, n) => new Uint8Array(b, o, n) },
};

const byCode = new Map<number, DType>(Object.entries(info).map(([name, i]) => [i.code, name as DType]));

/** Every dtype this library knows. */
export const DTYPES: readonly DType[] = Object.keys(info) as DType[];

/** True when `value` names a dtype this library knows. */
export function isDType(value: unknown): value is DType {
  return typeof value === 'string' && Object.hasOwn(info, value);
}

/** The `TensorProto.DataType` number for a dtype. */
export function dtypeToCode(dtype: DType): number {
  return info[dtype].code;
}

/** The dtype for a `TensorProto.DataType` number; throws for types this library does not handle (complex, float4). */
export function dtypeFromCode(code: number): DType {
  const dtype = byCode.get(code);
  if (dtype === undefined) throw new Error(`unsupported ONNX tensor data type ${code}`);
  return dtype;
}

/** Bits one element takes in raw storage (4 for int4/uint4, 0 for strings). */
export function dtypeBits(dtype: DType): number {
  return info[dtype].bits;
}

/** Number of entries the dtype's storage array has for `elements` elements (4-bit types pack two per byte). */
export function storageLength(dtype: DType, elements: number): number {
  return info[dtype].bits === 4 ? Math.ceil(elements / 2) : elements;
}

/** Product of the dims: the element count of a tensor of that shape (1 for a scalar). */
export function elementCount(dims: readonly number[]): number {
  let n = 1;
  for (const d of dims) n *= d;
  return n;
}

/** A zero-filled storage array for `elements` elements of `dtype`. */
export function allocate<D extends DType>(dtype: D, elements: number): DTypeArrayMap[D] {
  return info[dtype].make(storageLength(dtype, elements)) as DTypeArrayMap[D];
}

/** Copies little-endian raw bytes into a fresh, aligned storage array for `dtype`. */
export function fromRawBytes(dtype: DType, bytes: Uint8Array, elements: number): NumericArray {
  const make = info[dtype].fromBuffer;
  if (!make) throw new Error(`dtype ${dtype} has no raw byte form`);
  const expected = rawByteLength(dtype, elements);
  if (bytes.byteLength !== expected) {
    throw new Error(`raw data for ${elements} ${dtype} elements should be ${expected} bytes, got ${bytes.byteLength}`);
  }
  // Copy first: the source is often a view at an odd offset into a larger buffer, and typed arrays need alignment.
  const copy = new Uint8Array(expected);
  copy.set(bytes);
  return make(copy.buffer, 0, storageLength(dtype, elements));
}

/** Bytes the raw (little-endian) form of `elements` elements of `dtype` takes. */
export function rawByteLength(dtype: DType, elements: number): number {
  const bits = info[dtype].bits;
  if (bits === 0) throw new Error('string tensors have no raw byte form');
  return bits === 4 ? Math.ceil(elements / 2) : (elements * bits) / 8;
}

/** The dtype a typed array stands for when nothing more specific is said (Uint16Array → uint16, Uint8Array → uint8). */
export function dtypeOfArray(values: TensorValues): DType {
  if (Array.isArray(values)) return 'string';
  if (values instanceof Float32Array) return 'float32';
  if (values instanceof Float64Array) return 'float64';
  if (values instanceof Int8Array) return 'int8';
  if (values instanceof Uint8Array) return 'uint8';
  if (values instanceof Int16Array) return 'int16';
  if (values instanceof Uint16Array) return 'uint16';
  if (values instanceof Int32Array) return 'int32';
  if (values instanceof Uint32Array) return 'uint32';
  if (values instanceof BigInt64Array) return 'int64';
  if (values instanceof BigUint64Array) return 'uint64';
  throw new Error('unsupported tensor storage');
}

/** True when `values` is the storage type `dtype` uses. */
export function storageMatches(dtype: DType, values: TensorValues): boolean {
  const probe = info[dtype].make(0);
  if (Array.isArray(probe)) return Array.isArray(values);
  return !Array.isArray(values) && Object.getPrototypeOf(values) === Object.getPrototypeOf(probe);
}
