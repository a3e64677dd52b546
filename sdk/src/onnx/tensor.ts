import {
  allocate,
  dtypeOfArray,
  elementCount,
  storageLength,
  storageMatches,
  type DType,
  type NumericArray,
  type TensorValues,
} from './dtype.js';
import { bfloat16Bits, bfloat16FromBits, float16Bits, float16FromBits } from './float16.js';

/** Where a tensor's bytes live when they are kept outside the model file. */
export interface ExternalDataRef {
  /** Path of the data file, relative to the model file's folder. */
  location: string;
  /** Byte offset of the tensor in that file. */
  offset: number;
  /** Byte length of the tensor there. */
  length: number;
  checksum?: string;
}

/** A constant tensor: an initializer, or a tensor-valued attribute. */
export interface OnnxTensor {
  name: string;
  dtype: DType;
  dims: number[];
  /** The elements, row-major; ignored when `external` is set (the bytes are in the external file). */
  data: TensorValues;
  /** Set when the bytes are kept in an external data file and have not been read in. */
  external?: ExternalDataRef;
  docString?: string;
}

/**
 * What `createTensor` accepts as values: a typed array (taken as the dtype's storage: 16-bit floats as bits, 4-bit
 * ints packed), or a plain array of element values converted to `dtype` (numbers to float16 bits, int4 packed …).
 */
export type TensorInput = TensorValues | readonly number[] | readonly bigint[] | readonly boolean[];

/**
 * Makes a tensor, checking that the values fit the dims. A typed array's own type gives the dtype
 * unless `dtype` says otherwise (e.g. `Uint16Array` holding `float16` bits); plain number arrays default to float32.
 */
export function createTensor(name: string, values: TensorInput, dims: readonly number[], dtype?: DType): OnnxTensor {
  const data = toStorage(values, dtype);
  const resolved = dtype ?? dtypeOfArray(data);
  if (!storageMatches(resolved, data)) {
    throw new Error(`tensor ${name}: ${data.constructor.name} cannot hold ${resolved} values`);
  }
  const expected = storageLength(resolved, elementCount(dims));
  if (data.length !== expected) {
    throw new Error(`tensor ${name}: dims [${dims.join(', ')}] need ${expected} values, got ${data.length}`);
  }
  return { name, dtype: resolved, dims: [...dims], data };
}

function toStorage(values: TensorInput, dtype: DType | undefined): TensorValues {
  if (ArrayBuffer.isView(values)) return values as NumericArray;
  const list = values as readonly (number | bigint | boolean | string)[];
  if (list.length > 0 && typeof list[0] === 'string') return [...(list as unknown as string[])];
  const target: DType =
    dtype ?? (typeof list[0] === 'bigint' ? 'int64' : typeof list[0] === 'boolean' ? 'bool' : 'float32');
  if (target === 'string') return list.map(String);
  if (target === 'float16' || target === 'bfloat16') {
    const bits = target === 'float16' ? float16Bits : bfloat16Bits;
    return Uint16Array.from(list, (v) => bits(Number(v)));
  }
  if (target === 'int4' || target === 'uint4') return packInt4(list.map(Number));
  const out = allocate(target, list.length) as NumericArray;
  if (out instanceof BigInt64Array || out instanceof BigUint64Array) {
    for (let i = 0; i < list.length; i++) out[i] = BigInt(list[i] as number | bigint);
  } else {
    for (let i = 0; i < list.length; i++) out[i] = Number(list[i]);
  }
  return out;
}

/** The tensor's elements as little-endian bytes (a view, not a copy). */
export function tensorBytes(tensor: OnnxTensor): Uint8Array {
  if (Array.isArray(tensor.data)) throw new Error(`tensor ${tensor.name}: string tensors have no raw bytes`);
  const data = tensor.data as NumericArray;
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

/** Size in bytes of the tensor's element storage (UTF-8 length summed for strings). */
export function tensorByteLength(tensor: OnnxTensor): number {
  if (tensor.external) return tensor.external.length;
  if (Array.isArray(tensor.data)) return tensor.data.reduce((n, s) => n + Buffer.byteLength(s), 0);
  return (tensor.data as NumericArray).byteLength;
}

/** Packs 4-bit integers two per byte, first element in the low nibble (the ONNX layout). */
export function packInt4(values: ArrayLike<number>): Uint8Array {
  const out = new Uint8Array(Math.ceil(values.length / 2));
  for (let i = 0; i < values.length; i++) out[i >> 1]! |= (values[i]! & 0x0f) << ((i & 1) * 4);
  return out;
}

/** Unpacks `count` 4-bit integers (sign-extended when `signed`) from the ONNX two-per-byte layout. */
export function unpackInt4(packed: Uint8Array, count: number, signed: boolean): Int8Array {
  const out = new Int8Array(count);
  for (let i = 0; i < count; i++) {
    const nibble = (packed[i >> 1]! >> ((i & 1) * 4)) & 0x0f;
    out[i] = signed && nibble > 7 ? nibble - 16 : nibble;
  }
  return out;
}

/**
 * The elements of a numeric tensor as plain numbers: float16/bfloat16 bits decoded, 4-bit ints unpacked,
 * 64-bit ints converted (exact up to 2^53). For reading weights, e.g. to quantize them.
 */
export function tensorToNumbers(tensor: OnnxTensor): Float64Array {
  if (tensor.external) throw new Error(`tensor ${tensor.name}: its data is external and not loaded`);
  if (Array.isArray(tensor.data)) throw new Error(`tensor ${tensor.name}: string tensors have no numbers`);
  const n = elementCount(tensor.dims);
  const data = tensor.data as NumericArray;
  switch (tensor.dtype) {
    case 'float16':
      return Float64Array.from(data as Uint16Array, float16FromBits);
    case 'bfloat16':
      return Float64Array.from(data as Uint16Array, bfloat16FromBits);
    case 'int4':
    case 'uint4':
      return Float64Array.from(unpackInt4(data as Uint8Array, n, tensor.dtype === 'int4'));
    case 'int64':
    case 'uint64':
      return Float64Array.from(data as BigInt64Array, (v) => Number(v));
    default:
      if (tensor.dtype.startsWith('float8')) {
        throw new Error(`tensor ${tensor.name}: ${tensor.dtype} decoding is not implemented`);
      }
      return Float64Array.from(data as Float32Array);
  }
}
