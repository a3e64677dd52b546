import {
  allocateTensorData,
  badRequest,
  elementCount,
  fromFloat16Bits,
  isBigIntDataType,
  toFloat16Bits,
  type Tensor,
  type TensorData,
  type TensorDataType,
} from '@nucleus/sdk';

/** A JSON value holding tensor elements: a flat list, a nested list, or one scalar. */
export type JsonTensorData = unknown;

/** The shape of a rectangular nested list; 400 naming `input` when it is ragged. */
export function shapeOfNested(value: JsonTensorData, input: string): number[] {
  const shape: number[] = [];
  let cursor = value;
  while (Array.isArray(cursor)) {
    shape.push(cursor.length);
    if (cursor.length === 0) break;
    cursor = cursor[0];
  }
  // A walk over every list checks that each one has the length its depth promises.
  const check = (node: unknown, depth: number, path: string): void => {
    if (depth === shape.length) {
      if (Array.isArray(node))
        throw badRequest(
          'invalid_tensor_data',
          `input '${input}' is not rectangular: ${path} is a list where a value was expected`,
          input,
        );
      return;
    }
    if (!Array.isArray(node) || node.length !== shape[depth]) {
      throw badRequest(
        'invalid_tensor_data',
        `input '${input}' is not rectangular: ${path} has ${Array.isArray(node) ? node.length : 'no'} entries, expected ${shape[depth]}`,
        input,
      );
    }
    for (let i = 0; i < node.length; i++) check(node[i], depth + 1, `${path}[${i}]`);
  };
  check(value, 0, 'data');
  return shape;
}

/** The elements of a flat or nested list in row-major order (a scalar becomes one element). */
export function flatten(value: JsonTensorData): unknown[] {
  if (!Array.isArray(value)) return [value];
  if (!value.some(Array.isArray)) return value;
  return (value as unknown[]).flat(Infinity);
}

/**
 * The elements of a v2 input's `data`: a typed array as it is (the server's JSON parser thread hands large tensors
 * over that way), else {@link flatten}.
 */
export function tensorValues(value: JsonTensorData): ArrayLike<unknown> {
  if (ArrayBuffer.isView(value) && !(value instanceof DataView)) return value as unknown as ArrayLike<unknown>;
  return flatten(value);
}

function describe(v: unknown): string {
  return typeof v === 'string' ? JSON.stringify(v.length > 20 ? `${v.slice(0, 20)}…` : v) : String(v);
}

/**
 * JSON elements as a typed array of `dtype`; 400 naming `input` and the first element that does not fit. A typed
 * array that already is `dtype`'s kind is returned as it is, without a copy.
 */
export function toTensorData(
  values: ArrayLike<unknown>,
  dtype: TensorDataType,
  input: string,
  typeName: string = dtype,
): TensorData {
  if (
    dtype !== 'bool' &&
    dtype !== 'float16' &&
    ArrayBuffer.isView(values) &&
    values.constructor === allocateTensorData(dtype, 0).constructor
  ) {
    return values as unknown as TensorData;
  }
  const data = allocateTensorData(dtype, values.length);
  const bad = (i: number, want: string): never => {
    throw badRequest(
      'invalid_tensor_data',
      `input '${input}': element ${i} is ${describe(values[i])}, but ${typeName} needs ${want}`,
      input,
    );
  };
  if (dtype === 'bool') {
    const out = data as Uint8Array;
    for (let i = 0; i < values.length; i++) {
      const v = values[i];
      if (v === true || v === 1) out[i] = 1;
      else if (v === false || v === 0) out[i] = 0;
      else bad(i, 'true or false');
    }
    return out;
  }
  if (isBigIntDataType(dtype)) {
    const out = data as BigInt64Array | BigUint64Array;
    for (let i = 0; i < values.length; i++) {
      const v = values[i];
      if (typeof v !== 'number' || !Number.isSafeInteger(v)) bad(i, 'an integer');
      if (dtype === 'uint64' && (v as number) < 0) bad(i, 'a non-negative integer');
      out[i] = BigInt(v as number);
    }
    return out;
  }
  const integer = !dtype.startsWith('float');
  const out = data as Float32Array;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (typeof v !== 'number' || (integer && !Number.isInteger(v))) bad(i, integer ? 'an integer' : 'a number');
    out[i] = dtype === 'float16' ? toFloat16Bits(v as number) : (v as number);
  }
  if (integer) {
    // A typed array wraps out-of-range integers silently; refuse them instead.
    for (let i = 0; i < values.length; i++) if (out[i] !== values[i]) bad(i, `a value in the range of ${typeName}`);
  }
  return out;
}

/** A tensor's elements as JSON values: numbers (int64 as numbers), booleans for bool, half floats decoded. */
export function fromTensorData(tensor: Tensor): Array<number | boolean> {
  const { data, dtype } = tensor;
  if (dtype === 'bool') return Array.from(data as Uint8Array, (v) => v !== 0);
  if (dtype === 'float16') return Array.from(data as Uint16Array, fromFloat16Bits);
  if (isBigIntDataType(dtype)) return Array.from(data as BigInt64Array, Number);
  return Array.from(data as Float32Array);
}

/** Flat elements as nested lists following `shape`. */
export function nest(flat: readonly unknown[], shape: readonly number[]): unknown {
  if (shape.length === 0) return flat[0];
  const build = (depth: number, offset: number): unknown[] => {
    const n = shape[depth]!;
    if (depth === shape.length - 1) return flat.slice(offset, offset + n);
    const stride = elementCount(shape.slice(depth + 1));
    return Array.from({ length: n }, (_, i) => build(depth + 1, offset + i * stride));
  };
  return build(0, 0);
}
