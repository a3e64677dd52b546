import { refusalOf } from '@nucleus/sdk/testing';
import assert from 'node:assert/strict';
import {
  attachBinaryInputs,
  binaryResponse,
  decodeInputs,
  flatten,
  fromTensorData,
  kserveDatatype,
  nest,
  SUPPORTED_DATATYPES,
  shapeOfNested,
  tensorDataType,
  toTensorData,
  wantsBinary,
} from '@nucleus/plugin-api-kserve';
import type { ModelVersionInfo, TensorDataType } from '@nucleus/sdk';

const MODEL: ModelVersionInfo = {
  name: 'mlp',
  version: '1',
  state: 'ready',
  origin: 'builtin',
  path: '/models/mlp/1',
  inputs: [{ name: 'x', dtype: 'float32', shape: [-1, 2] }],
  outputs: [{ name: 'y', dtype: 'float32', shape: [-1, 3] }],
  metadata: {},
} as ModelVersionInfo;

describe('api-kserve: datatypes', () => {
  it('maps every engine dtype to its protocol name and back; BYTES and unknown names are not served', () => {
    const dtypes: TensorDataType[] = [
      'bool',
      'uint8',
      'uint16',
      'uint32',
      'uint64',
      'int8',
      'int16',
      'int32',
      'int64',
      'float16',
      'float32',
      'float64',
    ];
    for (const dtype of dtypes) assert.equal(tensorDataType(kserveDatatype(dtype)), dtype);
    assert.equal(kserveDatatype('float16'), 'FP16');
    assert.equal(tensorDataType('BYTES'), undefined);
    assert.equal(tensorDataType('fp32'), undefined);
    assert.equal(SUPPORTED_DATATYPES.length, 12);
  });
});

describe('api-kserve: tensor JSON', () => {
  it('finds the shape of a rectangular nested list, and names where a ragged one goes wrong', () => {
    assert.deepEqual(
      shapeOfNested(
        [
          [1, 2, 3],
          [4, 5, 6],
        ],
        'x',
      ),
      [2, 3],
    );
    assert.deepEqual(shapeOfNested(7, 'x'), []);
    assert.deepEqual(shapeOfNested([], 'x'), [0]);
    assert.deepEqual(
      refusalOf(() => shapeOfNested([[1, 2], [3]], 'x')),
      {
        code: 'invalid_tensor_data',
        message: "input 'x' is not rectangular: data[1] has 1 entries, expected 2",
        param: 'x',
      },
    );
    assert.match(
      refusalOf(() => shapeOfNested([[1], [[2]]], 'x')).message,
      /data\[1\]\[0\] is a list where a value was expected/,
    );
  });

  it('flattens and nests row-major, so a round trip gives the same lists', () => {
    const nested = [
      [
        [1, 2],
        [3, 4],
      ],
      [
        [5, 6],
        [7, 8],
      ],
    ];
    const flat = flatten(nested);
    assert.deepEqual(flat, [1, 2, 3, 4, 5, 6, 7, 8]);
    assert.deepEqual(nest(flat, [2, 2, 2]), nested);
    assert.deepEqual(nest([9], []), 9);
    assert.deepEqual(flatten(3), [3]);
  });

  it('fills a typed array of the dtype, booleans and half floats included, and reads it back', () => {
    assert.deepEqual([...toTensorData([1.5, -2], 'float32', 'x')], [1.5, -2]);
    assert.deepEqual([...(toTensorData([true, 0, 1], 'bool', 'x') as Uint8Array)], [1, 0, 1]);
    assert.deepEqual([...(toTensorData([2 ** 40], 'int64', 'x') as BigInt64Array)], [2n ** 40n]);
    const half = toTensorData([0.5, -2, 65504], 'float16', 'x');
    assert.ok(half instanceof Uint16Array);
    assert.deepEqual(fromTensorData({ dtype: 'float16', shape: [3], data: half }), [0.5, -2, 65504]);
    assert.deepEqual(fromTensorData({ dtype: 'bool', shape: [2], data: new Uint8Array([1, 0]) }), [true, false]);
    assert.deepEqual(fromTensorData({ dtype: 'int64', shape: [1], data: new BigInt64Array([-3n]) }), [-3]);
    // A typed array of the right kind is taken as it is.
    const given = new Float32Array([1, 2]);
    assert.equal(toTensorData(given, 'float32', 'x'), given);
  });

  it('names the first element that does not fit the datatype', () => {
    assert.deepEqual(
      refusalOf(() => toTensorData([1, 'two'], 'float32', 'x', 'FP32')),
      {
        code: 'invalid_tensor_data',
        message: `input 'x': element 1 is "two", but FP32 needs a number`,
        param: 'x',
      },
    );
    assert.match(
      refusalOf(() => toTensorData([1.5], 'int32', 'x', 'INT32')).message,
      /element 0 is 1\.5, but INT32 needs an integer/,
    );
    assert.match(
      refusalOf(() => toTensorData([300], 'uint8', 'x', 'UINT8')).message,
      /element 0 is 300, but UINT8 needs a value in the range of UINT8/,
    );
    assert.match(refusalOf(() => toTensorData([-1], 'uint64', 'x', 'UINT64')).message, /a non-negative integer/);
    assert.match(refusalOf(() => toTensorData([2], 'bool', 'x', 'BOOL')).message, /BOOL needs true or false/);
  });
});

describe('api-kserve: v2 inputs', () => {
  it('decodes inputs checked against the model’s names and datatypes', () => {
    const tensors = decodeInputs(
      { inputs: [{ name: 'x', shape: [2, 2], datatype: 'FP32', data: [1, 2, 3, 4] }] },
      MODEL,
    );
    assert.deepEqual(tensors.x!.shape, [2, 2]);
    assert.deepEqual([...tensors.x!.data], [1, 2, 3, 4]);
    assert.deepEqual(
      refusalOf(() => decodeInputs({ inputs: [{ name: 'z', shape: [1], datatype: 'FP32', data: [1] }] }, MODEL)),
      {
        code: 'unknown_input',
        message: "model 'mlp' version '1' has no input named 'z'; its inputs are x (FP32 [-1,2])",
        param: 'z',
      },
    );
    assert.equal(
      refusalOf(() => decodeInputs({ inputs: [{ name: 'x', shape: [2], datatype: 'INT32', data: [1, 2] }] }, MODEL))
        .message,
      "input 'x' has datatype INT32, but model 'mlp' version '1' expects FP32",
    );
    assert.equal(
      refusalOf(() => decodeInputs({ inputs: [{ name: 'x', shape: [3], datatype: 'FP32', data: [1, 2] }] }, MODEL))
        .message,
      "input 'x' has shape [3], which holds 3 values, but its data holds 2",
    );
    const twice = { name: 'x', shape: [1], datatype: 'FP32', data: [1] };
    assert.equal(refusalOf(() => decodeInputs({ inputs: [twice, twice] }, MODEL)).code, 'duplicate_input');
  });

  it('takes binary inputs from the bytes after the JSON header, in input order', () => {
    const floats = new Float32Array([1.5, -2, 3, 4]);
    const ints = new Int32Array([7]);
    const binary = new Uint8Array([...new Uint8Array(floats.buffer), ...new Uint8Array(ints.buffer)]);
    const body = {
      inputs: [
        { name: 'x', shape: [2, 2], datatype: 'FP32', parameters: { binary_data_size: 16 } },
        { name: 'n', shape: [1], datatype: 'INT32', parameters: { binary_data_size: 4 } },
      ],
    };
    attachBinaryInputs(body, binary);
    assert.deepEqual([...(body.inputs[0] as unknown as { data: Float32Array }).data], [1.5, -2, 3, 4]);
    assert.deepEqual([...(body.inputs[1] as unknown as { data: Int32Array }).data], [7]);
  });

  it('a BYTES input is length-prefixed elements; the framing and the sizes are checked', () => {
    const frame = (s: string) => {
      const b = Buffer.from(s);
      const out = Buffer.alloc(4 + b.length);
      out.writeUInt32LE(b.length, 0);
      b.copy(out, 4);
      return out;
    };
    const binary = new Uint8Array(Buffer.concat([frame('hi'), frame('there')]));
    const body = {
      inputs: [{ name: 's', shape: [2], datatype: 'BYTES', parameters: { binary_data_size: binary.length } }],
    };
    attachBinaryInputs(body, binary);
    const elements = (body.inputs[0] as unknown as { data: Uint8Array[] }).data;
    assert.deepEqual(
      elements.map((e) => Buffer.from(e).toString()),
      ['hi', 'there'],
    );
    const short = { inputs: [{ name: 'x', shape: [2], datatype: 'FP32', parameters: { binary_data_size: 4 } }] };
    assert.equal(
      refusalOf(() => attachBinaryInputs(short, new Uint8Array(4))).message,
      "input 'x' has binary_data_size 4, but shape [2] of FP32 is 2 × 4 = 8 bytes",
    );
    const none = { inputs: [{ name: 'x', shape: [1], datatype: 'FP32', parameters: { binary_data_size: 4 } }] };
    assert.match(refusalOf(() => attachBinaryInputs(none, undefined)).message, /Inference-Header-Content-Length/);
    const leftover = { inputs: [{ name: 'x', shape: [1], datatype: 'FP32', parameters: { binary_data_size: 4 } }] };
    assert.match(
      refusalOf(() => attachBinaryInputs(leftover, new Uint8Array(6))).message,
      /6 bytes of binary data after its JSON inference header, but the inputs' binary_data_size add up to 4/,
    );
  });

  it('sends an output as binary when it or the request asks, with the JSON header’s length', () => {
    const request = {
      parameters: { binary_data_output: true },
      outputs: [{ name: 'y', parameters: { binary_data: false } }],
    };
    assert.equal(wantsBinary(request, 'y'), false);
    assert.equal(wantsBinary(request, 'z'), true);
    assert.equal(wantsBinary({}, 'y'), false);
    const data = new Float32Array([0.25, 0.75]);
    const answer = binaryResponse({
      model_name: 'mlp',
      outputs: [
        { name: 'y', datatype: 'FP32', shape: [2], parameters: { binary_data_size: 8 }, data },
        { name: 'label', datatype: 'INT64', shape: [1], data: [1] },
      ],
    })!;
    const header = JSON.parse(answer.body.subarray(0, answer.headerLength).toString()) as {
      outputs: Array<{ name: string; data?: unknown }>;
    };
    assert.equal(header.outputs[0]!.data, undefined);
    assert.deepEqual(header.outputs[1]!.data, [1]);
    const tail = answer.body.subarray(answer.headerLength);
    assert.deepEqual([...new Float32Array(tail.buffer.slice(tail.byteOffset, tail.byteOffset + 8))], [0.25, 0.75]);
    assert.equal(binaryResponse({ outputs: [{ name: 'y', data: [1] }] }), undefined);
  });
});
