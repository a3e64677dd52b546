import {
  allocateTensorData,
  badRequest,
  elementCount,
  type Tensor,
  type TensorData,
  type TensorDataType,
} from '@nucleus/sdk';
import { SUPPORTED_DATATYPES, tensorDataType } from './kserve-datatypes.js';

/**
 * The KServe v2 binary tensor data extension (as Triton implements it): an input whose `parameters.binary_data_size`
 * is set takes its data from the bytes after the JSON inference header, in input order; an output is sent the same
 * way when the request asks (`parameters.binary_data_output` for all, `outputs[i].parameters.binary_data` for one).
 * Tensor bytes are little-endian and row-major; BOOL is one byte (0 or 1); a BYTES element is a 4-byte little-endian
 * length followed by its bytes.
 */
export const BINARY_EXTENSION = 'binary_tensor_data';

/** Bytes per element of each fixed-size datatype. */
const ELEMENT_BYTES: Record<string, number> = {
  BOOL: 1,
  UINT8: 1,
  INT8: 1,
  UINT16: 2,
  INT16: 2,
  FP16: 2,
  UINT32: 4,
  INT32: 4,
  FP32: 4,
  UINT64: 8,
  INT64: 8,
  FP64: 8,
};

interface RawInput {
  name?: unknown;
  shape?: unknown;
  datatype?: unknown;
  parameters?: Record<string, unknown>;
  data?: unknown;
}

/** The `binary_data_size` an input or output declares, or undefined when it has none. */
function declaredSize(entry: { parameters?: unknown }): unknown {
  const parameters = entry.parameters;
  return parameters !== null && typeof parameters === 'object'
    ? (parameters as Record<string, unknown>).binary_data_size
    : undefined;
}

/** Whether a request input carries its data as binary. */
export function isBinaryInput(input: { parameters?: unknown }): boolean {
  return declaredSize(input) !== undefined;
}

/** `count` elements of a fixed-size datatype viewed over `bytes` without a copy when aligned, else copied once. */
function typedView(bytes: Uint8Array, dtype: TensorDataType, count: number): TensorData {
  const Ctor = allocateTensorData(dtype, 0).constructor as {
    new (buffer: ArrayBufferLike, offset: number, length: number): TensorData;
    BYTES_PER_ELEMENT: number;
  };
  if (bytes.byteOffset % Ctor.BYTES_PER_ELEMENT === 0) return new Ctor(bytes.buffer, bytes.byteOffset, count);
  const copy = bytes.slice();
  return new Ctor(copy.buffer, 0, count);
}

/** The elements of a BYTES tensor: each a 4-byte little-endian length, then that many bytes; 400 naming `name` when the framing is off. */
function bytesElements(bytes: Uint8Array, count: number, name: string): Uint8Array[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out: Uint8Array[] = [];
  let at = 0;
  while (at < bytes.byteLength) {
    if (at + 4 > bytes.byteLength) {
      throw badRequest(
        'invalid_binary_data',
        `input '${name}': BYTES element ${out.length} starts at byte ${at} of its ${bytes.byteLength}, too close to the end for its 4-byte length`,
        name,
      );
    }
    const length = view.getUint32(at, true);
    if (at + 4 + length > bytes.byteLength) {
      throw badRequest(
        'invalid_binary_data',
        `input '${name}': BYTES element ${out.length} is ${length} bytes long, but only ${bytes.byteLength - at - 4} of its binary_data_size are left`,
        name,
      );
    }
    out.push(bytes.subarray(at + 4, at + 4 + length));
    at += 4 + length;
  }
  if (out.length !== count) {
    throw badRequest(
      'invalid_binary_data',
      `input '${name}' has shape of ${count} elements, but its BYTES data holds ${out.length}`,
      name,
    );
  }
  return out;
}

/**
 * Gives every binary input of a parsed v2 request its `data`, taken in input order from `binary` (the bytes after
 * the JSON inference header): a typed array viewed over the received bytes for fixed-size datatypes, a list of
 * byte arrays for BYTES. 400 naming the input when sizes and shapes do not agree, and when the binary data is not
 * used up exactly.
 */
export function attachBinaryInputs(body: Record<string, unknown>, binary: Uint8Array | undefined): void {
  const inputs = Array.isArray(body.inputs) ? (body.inputs as unknown[]) : [];
  let offset = 0;
  let last: string | undefined;
  for (const [i, entry] of inputs.entries()) {
    if (entry === null || typeof entry !== 'object') continue;
    const input = entry as RawInput;
    const size = declaredSize(input);
    if (size === undefined) continue;
    const name = typeof input.name === 'string' ? input.name : `inputs[${i}]`;
    last = name;
    if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) {
      throw badRequest(
        'invalid_binary_data',
        `input '${name}': parameters.binary_data_size must be a byte count, got ${JSON.stringify(size)}`,
        name,
      );
    }
    if (!binary) {
      throw badRequest(
        'invalid_binary_data',
        `input '${name}' has parameters.binary_data_size, but the request has no binary data: send the JSON inference header's length as the Inference-Header-Content-Length header`,
        name,
      );
    }
    if (input.data !== undefined)
      throw badRequest(
        'invalid_binary_data',
        `input '${name}' has both data and parameters.binary_data_size; give one`,
        name,
      );
    if (offset + size > binary.byteLength) {
      throw badRequest(
        'invalid_binary_data',
        `input '${name}' has binary_data_size ${size}, but only ${binary.byteLength - offset} bytes of binary data follow the inputs before it (${binary.byteLength} in all)`,
        name,
      );
    }
    const shape = input.shape;
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && (d as number) >= 0)) {
      throw badRequest('invalid_body', `input '${name}': shape must be a list of non-negative integers`, name);
    }
    const count = elementCount(shape as number[]);
    const bytes = binary.subarray(offset, offset + size);
    offset += size;
    const datatype = input.datatype;
    if (datatype === 'BYTES') {
      input.data = bytesElements(bytes, count, name);
      continue;
    }
    const width = typeof datatype === 'string' ? ELEMENT_BYTES[datatype] : undefined;
    const dtype = typeof datatype === 'string' ? tensorDataType(datatype) : undefined;
    if (width === undefined || dtype === undefined) {
      throw badRequest(
        'invalid_datatype',
        `input '${name}' has datatype '${String(datatype)}', which this server does not serve (it serves ${SUPPORTED_DATATYPES.join(', ')})`,
        name,
      );
    }
    if (size !== count * width) {
      throw badRequest(
        'invalid_binary_data',
        `input '${name}' has binary_data_size ${size}, but shape [${(shape as number[]).join(',')}] of ${datatype} is ${count} × ${width} = ${count * width} bytes`,
        name,
      );
    }
    input.data = typedView(bytes, dtype, count);
  }
  if (binary && offset !== binary.byteLength) {
    const after =
      last === undefined ? 'no input declares binary_data_size' : `the inputs' binary_data_size add up to ${offset}`;
    throw badRequest(
      'invalid_binary_data',
      `the request has ${binary.byteLength} bytes of binary data after its JSON inference header, but ${after}`,
      last,
    );
  }
}

/**
 * A binary input's typed array as tensor data: as it is (already the dtype's array kind, FP16 as raw bits); BOOL
 * bytes must be 0 or 1. 400 naming the input otherwise.
 */
export function binaryTensorData(
  data: ArrayBufferView,
  dtype: TensorDataType,
  name: string,
  typeName: string,
): TensorData {
  if (data.constructor !== allocateTensorData(dtype, 0).constructor) {
    throw badRequest('invalid_tensor_data', `input '${name}': its binary data is not ${typeName}`, name);
  }
  if (dtype === 'bool') {
    const bytes = data as Uint8Array;
    for (let i = 0; i < bytes.length; i++) {
      if (bytes[i]! > 1)
        throw badRequest(
          'invalid_tensor_data',
          `input '${name}': BOOL element ${i} is byte ${bytes[i]}, but BOOL needs 0 or 1`,
          name,
        );
    }
  }
  return data as TensorData;
}

/** Whether output `name` goes back as binary: its own `binary_data` parameter, else the request's `binary_data_output`. */
export function wantsBinary(
  body: {
    parameters?: Record<string, unknown>;
    outputs?: Array<{ name: string; parameters?: Record<string, unknown> }>;
  },
  name: string,
): boolean {
  const own = body.outputs?.find((o) => o.name === name)?.parameters?.binary_data;
  if (typeof own === 'boolean') return own;
  return body.parameters?.binary_data_output === true;
}

/** A tensor's bytes, little-endian as the machine holds them, viewed without a copy. */
export function tensorBytes(tensor: Tensor): Uint8Array {
  const { data } = tensor;
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

/**
 * A v2 response whose binary outputs (those with `parameters.binary_data_size` and their bytes as a typed array in
 * `data`) move behind the JSON: the JSON header without their data, its length, and the body. Undefined when no
 * output is binary.
 */
export function binaryResponse(body: Record<string, unknown>): { headerLength: number; body: Buffer } | undefined {
  const outputs = Array.isArray(body.outputs) ? (body.outputs as Array<Record<string, unknown>>) : [];
  const chunks: Uint8Array[] = [];
  const shown = outputs.map((output) => {
    if (declaredSize(output) === undefined || !ArrayBuffer.isView(output.data)) return output;
    const { data, ...rest } = output;
    const view = data as ArrayBufferView;
    chunks.push(new Uint8Array(view.buffer, view.byteOffset, view.byteLength));
    return rest;
  });
  if (chunks.length === 0) return undefined;
  const header = Buffer.from(JSON.stringify({ ...body, outputs: shown }));
  return { headerLength: header.byteLength, body: Buffer.concat([header, ...chunks]) };
}
