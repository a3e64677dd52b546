import {
  allocateTensorData,
  elementCount,
  kserveDatatype,
  SUPPORTED_DATATYPES,
  tensorDataType,
  type ModelVersionInfo,
  type Tensor,
  type TensorData,
  type TensorDataType,
} from '@nucleus/sdk';
import { invalidArgument } from './grpc-errors.js';
import type { InferInputTensor, InferOutputTensor, InferTensorContents, ModelInferRequest } from './messages.js';

/** The `contents` field that carries each engine dtype; FP16 has none (it travels as raw bytes only). */
const CONTENTS_FIELD: Record<TensorDataType, keyof InferTensorContents | undefined> = {
  bool: 'bool_contents',
  int8: 'int_contents',
  int16: 'int_contents',
  int32: 'int_contents',
  int64: 'int64_contents',
  uint8: 'uint_contents',
  uint16: 'uint_contents',
  uint32: 'uint_contents',
  uint64: 'uint64_contents',
  float16: undefined,
  float32: 'fp32_contents',
  float64: 'fp64_contents',
};

/** A tensor shape from the message (int64 as text): non-negative integers, or 400 naming the input. */
export function shapeOf(input: { name: string; shape: Array<string | number> }): number[] {
  const shape = input.shape.map(Number);
  if (!shape.every((d) => Number.isSafeInteger(d) && d >= 0))
    throw invalidArgument(
      'invalid_shape',
      `input '${input.name}': shape [${input.shape.join(',')}] must hold non-negative integers`,
      input.name,
    );
  return shape;
}

/** `count` elements of `dtype` over the raw bytes: viewed in place when aligned, else copied once. */
function fromRaw(
  bytes: Uint8Array,
  dtype: TensorDataType,
  shape: number[],
  name: string,
  datatype: string,
): TensorData {
  const Ctor = allocateTensorData(dtype, 0).constructor as {
    new (buffer: ArrayBufferLike, offset: number, length: number): TensorData;
    BYTES_PER_ELEMENT: number;
  };
  const count = elementCount(shape);
  const want = count * Ctor.BYTES_PER_ELEMENT;
  if (bytes.byteLength !== want)
    throw invalidArgument(
      'invalid_tensor_data',
      `input '${name}': raw_input_contents holds ${bytes.byteLength} bytes, but shape [${shape.join(',')}] of ${datatype} is ${count} × ${Ctor.BYTES_PER_ELEMENT} = ${want}`,
      name,
    );
  // A Buffer's slice() is a view, not a copy: copy through the Uint8Array constructor.
  const aligned = bytes.byteOffset % Ctor.BYTES_PER_ELEMENT === 0 ? bytes : new Uint8Array(bytes);
  const data = new Ctor(aligned.buffer, aligned.byteOffset, count);
  if (dtype === 'bool') {
    const flags = data as Uint8Array;
    for (let i = 0; i < flags.length; i++)
      if (flags[i]! > 1)
        throw invalidArgument(
          'invalid_tensor_data',
          `input '${name}': BOOL element ${i} is byte ${flags[i]}, but BOOL needs 0 or 1`,
          name,
        );
  }
  return data;
}

/** The typed `contents` of an input as tensor data, checking the field, the count and each value's range. */
function fromContents(input: InferInputTensor, dtype: TensorDataType, shape: number[]): TensorData {
  const { name, datatype } = input;
  const field = CONTENTS_FIELD[dtype];
  if (field === undefined)
    throw invalidArgument(
      'invalid_tensor_data',
      `input '${name}' is ${datatype}, which has no typed contents field: send its bytes in raw_input_contents`,
      name,
    );
  const contents = input.contents ?? {};
  const values = (contents[field] ?? []) as ArrayLike<unknown>;
  const count = elementCount(shape);
  if (values.length === 0 && count > 0) {
    const used = Object.entries(contents).find(([, v]) => Array.isArray(v) && v.length > 0)?.[0];
    throw invalidArgument(
      'invalid_tensor_data',
      used
        ? `input '${name}' is ${datatype}, whose values go in contents.${field}, but the request filled contents.${used}`
        : `input '${name}' has no data: fill contents.${field} or raw_input_contents`,
      name,
    );
  }
  if (values.length !== count)
    throw invalidArgument(
      'invalid_tensor_data',
      `input '${name}' has shape [${shape.join(',')}], which holds ${count} values, but contents.${field} holds ${values.length}`,
      name,
    );
  const data = allocateTensorData(dtype, count);
  if (dtype === 'int64' || dtype === 'uint64') {
    const out = data as BigInt64Array | BigUint64Array;
    for (let i = 0; i < count; i++) out[i] = BigInt(values[i] as string | number);
    return out;
  }
  const out = data as Float32Array;
  for (let i = 0; i < count; i++) out[i] = dtype === 'bool' ? (values[i] ? 1 : 0) : (values[i] as number);
  // The wire types are 32 bits wide: an INT8 or UINT16 value out of its range would wrap silently.
  if (dtype === 'int8' || dtype === 'int16' || dtype === 'uint8' || dtype === 'uint16') {
    for (let i = 0; i < count; i++)
      if (out[i] !== values[i])
        throw invalidArgument(
          'invalid_tensor_data',
          `input '${name}': element ${i} is ${String(values[i])}, out of the range of ${datatype}`,
          name,
        );
  }
  return out;
}

/**
 * The request's inputs as tensors, checked against the model in protocol terms (names, datatypes, element counts):
 * each from its typed `contents` or, when the request uses them, from `raw_input_contents` (one entry per input, in
 * input order, as the protocol says). The engine checks shapes against the model.
 */
export function decodeInputs(request: ModelInferRequest, info: ModelVersionInfo): Record<string, Tensor> {
  const raw = request.raw_input_contents;
  if (raw.length > 0 && raw.length !== request.inputs.length)
    throw invalidArgument(
      'invalid_tensor_data',
      `the request has ${request.inputs.length} inputs but ${raw.length} raw_input_contents; give one entry per input, in input order`,
    );
  if (request.inputs.length === 0) throw invalidArgument('missing_inputs', 'the request has no inputs', 'inputs');
  const label = `model '${info.name}' version '${info.version}'`;
  const inputs: Record<string, Tensor> = {};
  request.inputs.forEach((input, i) => {
    const { name, datatype } = input;
    if (inputs[name]) throw invalidArgument('duplicate_input', `input '${name}' is given twice`, name);
    const meta = info.inputs.find((t) => t.name === name);
    if (!meta && info.inputs.length > 0) {
      const known = info.inputs.map((t) => `${t.name} (${kserveDatatype(t.dtype)} [${t.shape.join(',')}])`).join(', ');
      throw invalidArgument('unknown_input', `${label} has no input named '${name}'; its inputs are ${known}`, name);
    }
    const dtype = tensorDataType(datatype);
    if (dtype === undefined)
      throw invalidArgument(
        'invalid_datatype',
        `input '${name}' has datatype '${datatype}', which this model does not take (the server serves ${SUPPORTED_DATATYPES.join(', ')})`,
        name,
      );
    if (meta && meta.dtype !== dtype)
      throw invalidArgument(
        'invalid_datatype',
        `input '${name}' has datatype ${datatype}, but ${label} expects ${kserveDatatype(meta.dtype)}`,
        name,
      );
    const shape = shapeOf(input);
    const data = raw.length > 0 ? fromRaw(raw[i]!, dtype, shape, name, datatype) : fromContents(input, dtype, shape);
    inputs[name] = { dtype, shape, data };
  });
  return inputs;
}

/** A tensor's bytes, little-endian as the machine holds them, viewed without a copy. */
function bytesOf(tensor: Tensor): Uint8Array {
  const { data } = tensor;
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

/** A tensor's elements in its `contents` field (64-bit integers as decimal text, which protobuf takes losslessly). */
function toContents(tensor: Tensor): InferTensorContents {
  const field = CONTENTS_FIELD[tensor.dtype]!;
  const { data, dtype } = tensor;
  if (dtype === 'int64' || dtype === 'uint64') return { [field]: Array.from(data as BigInt64Array, String) };
  if (dtype === 'bool') return { [field]: Array.from(data as Uint8Array, (v) => v !== 0) };
  return { [field]: Array.from(data as Float32Array) };
}

/**
 * The response's outputs, in `order`: as `raw_output_contents` when `raw` (Triton's clients read them there) or when
 * an output is FP16 (which has no typed field; the protocol wants one form for all outputs), else as typed contents.
 */
export function encodeOutputs(
  outputs: Record<string, Tensor>,
  order: readonly string[],
  raw: boolean,
): { outputs: InferOutputTensor[]; raw_output_contents?: Uint8Array[] } {
  const names = order.filter((n) => outputs[n] !== undefined);
  const asRaw = raw || names.some((n) => outputs[n]!.dtype === 'float16');
  const head = (n: string) => ({ name: n, datatype: kserveDatatype(outputs[n]!.dtype), shape: outputs[n]!.shape });
  if (asRaw) return { outputs: names.map(head), raw_output_contents: names.map((n) => bytesOf(outputs[n]!)) };
  return { outputs: names.map((n) => ({ ...head(n), contents: toContents(outputs[n]!) })) };
}

/** The elements of a BYTES tensor in raw form: each a 4-byte little-endian length, then its bytes. */
export function bytesElements(bytes: Uint8Array, name: string): Uint8Array[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out: Uint8Array[] = [];
  for (let at = 0; at < bytes.byteLength; ) {
    const length = at + 4 <= bytes.byteLength ? view.getUint32(at, true) : -1;
    if (length < 0 || at + 4 + length > bytes.byteLength)
      throw invalidArgument(
        'invalid_tensor_data',
        `input '${name}': BYTES element ${out.length} overruns its raw_input_contents (each element is a 4-byte little-endian length, then its bytes)`,
        name,
      );
    out.push(bytes.subarray(at + 4, at + 4 + length));
    at += 4 + length;
  }
  return out;
}

/** Text as one raw BYTES element (its 4-byte little-endian length, then its UTF-8). */
export function rawText(text: string): Uint8Array {
  const body = Buffer.from(text, 'utf8');
  const out = Buffer.alloc(4 + body.byteLength);
  out.writeUInt32LE(body.byteLength, 0);
  body.copy(out, 4);
  return out;
}
