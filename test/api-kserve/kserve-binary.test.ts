import { strict as assert } from 'node:assert';
import { gzipSync } from 'node:zlib';
import { attachBinaryInputs } from '@nucleus/plugin-api-kserve';
import type { TestKernel } from '@nucleus/sdk/testing';
import { GraphBuilder } from '@nucleus/sdk/onnx';
import { tempDir } from '../helpers/paths.js';
import { builtinModel, f32, floats, i64, runDirect, writeVersion } from '../engine/engine-fixtures.js';
import { ADMIN_KEY, startKServe } from './kserve-fixtures.js';

// The KServe v2 binary tensor data extension, as Triton's clients speak it: a JSON inference header, then raw
// little-endian tensor bytes, with `Inference-Header-Content-Length` saying where one ends.

interface Output {
  name: string;
  datatype: string;
  shape: number[];
  parameters?: { binary_data_size?: number };
  data?: unknown[];
}

interface Decoded {
  status: number;
  header: {
    model_name?: string;
    id?: string;
    outputs: Output[];
    error?: { message: string; code: string; param?: string };
  };
  /** Each binary output's bytes, by name. */
  binary: Record<string, Uint8Array>;
  contentType: string;
}

/** `flags` BOOL [batch,3] and `half` FP16 [batch,3] in; `inverted` = not flags, `masked` = flags ? half : 0, `squared` = half². */
function flagsModel(): Uint8Array {
  const g = new GraphBuilder('flags');
  const flags = g.input('flags', 'bool', ['batch', 3]);
  const half = g.input('half', 'float16', ['batch', 3]);
  g.output(g.node('Not', [flags], {}, { outputs: ['inverted'] }), 'bool', ['batch', 3]);
  const zero = g.constant([0], [1], { dtype: 'float16' });
  g.output(g.node('Where', [flags, half, zero], {}, { outputs: ['masked'] }), 'float16', ['batch', 3]);
  g.output(g.node('Mul', [half, half], {}, { outputs: ['squared'] }), 'float16', ['batch', 3]);
  return g.toModel({ producer: 'nucleus-test' }).encode();
}

/** A body as Triton's Python client lays it out: `json.dumps` of the header (", " and ": " separators), then each binary input's bytes in order. */
function tritonBody(header: unknown, ...tensors: Uint8Array[]): { body: Buffer; headerLength: number } {
  const json = JSON.stringify(header)
    .replace(/,(?=["{[\d-]|true|false|null)/g, ', ')
    .replace(/":/g, '": ');
  const head = Buffer.from(json);
  return { body: Buffer.concat([head, ...tensors]), headerLength: head.byteLength };
}

function bytesOf(view: ArrayBufferView): Uint8Array {
  return new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
}

/** Splits a response into its JSON header and the binary outputs' bytes, as a Triton client does. */
async function decode(res: Response): Promise<Decoded> {
  const raw = new Uint8Array(await res.arrayBuffer());
  const declared = res.headers.get('inference-header-content-length');
  const headerLength = declared === null ? raw.byteLength : Number(declared);
  const header = JSON.parse(Buffer.from(raw.subarray(0, headerLength)).toString('utf8')) as Decoded['header'];
  const binary: Record<string, Uint8Array> = {};
  let at = headerLength;
  for (const o of header.outputs ?? []) {
    const size = o.parameters?.binary_data_size;
    if (size === undefined) continue;
    binary[o.name] = raw.slice(at, at + size);
    at += size;
  }
  if (declared !== null) assert.equal(at, raw.byteLength, 'the binary outputs fill the body exactly');
  return { status: res.status, header, binary, contentType: res.headers.get('content-type') ?? '' };
}

describe('KServe v2 binary tensor data', () => {
  let kit: TestKernel;
  let multiPath: string;
  let mlpPath: string;
  let flagsPath: string;

  before(async () => {
    multiPath = (await builtinModel('multi-io')).modelPath;
    mlpPath = (await builtinModel('mlp-classifier')).modelPath;
    const resnetPath = (await builtinModel('resnet-tiny')).modelPath;
    const flagsDir = writeVersion(tempDir('binary-flags'), 'flags', '1', flagsModel());
    flagsPath = `${flagsDir}/model.onnx`;
    kit = await startKServe({
      models: [
        { name: 'multi-io', path: multiPath },
        { name: 'mlp-classifier', path: mlpPath },
        { name: 'resnet-tiny', path: resnetPath },
        { name: 'flags', path: flagsDir },
      ],
    });
  });
  after(() => kit.stop());

  const post = (model: string, body: Uint8Array | string, headers: Record<string, string> = {}) =>
    fetch(new URL(`/v2/models/${model}/infer`, kit.url), {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN_KEY}`, ...headers },
      body,
    });
  const binaryPost = (
    model: string,
    { body, headerLength }: { body: Buffer; headerLength: number },
    headers: Record<string, string> = {},
  ) =>
    post(model, body, {
      'inference-header-content-length': String(headerLength),
      'content-type': 'application/octet-stream',
      ...headers,
    }).then(decode);
  const jsonPost = (model: string, body: unknown) =>
    post(model, JSON.stringify(body), { 'content-type': 'application/json' }).then(decode);

  it('lists binary_tensor_data among the server extensions', async () => {
    const meta = await kit.request('/v2');
    assert.deepEqual((meta.body as { extensions: string[] }).extensions, ['model_repository', 'binary_tensor_data']);
  });

  it('gives exactly the JSON answer for FP32 and INT64 tensors sent and returned as binary', async () => {
    const features = floats(3 * 6, 21);
    const category = BigInt64Array.from([4n, 0n, 2n]);
    const json = await jsonPost('multi-io', {
      inputs: [
        { name: 'features', shape: [3, 6], datatype: 'FP32', data: Array.from(features) },
        { name: 'category', shape: [3], datatype: 'INT64', data: [4, 0, 2] },
      ],
    });
    assert.equal(json.status, 200, JSON.stringify(json.header));
    const binary = await binaryPost(
      'multi-io',
      tritonBody(
        {
          id: 'b-1',
          inputs: [
            {
              name: 'features',
              shape: [3, 6],
              datatype: 'FP32',
              parameters: { binary_data_size: features.byteLength },
            },
            { name: 'category', shape: [3], datatype: 'INT64', parameters: { binary_data_size: category.byteLength } },
          ],
          parameters: { binary_data_output: true },
        },
        bytesOf(features),
        bytesOf(category),
      ),
    );
    assert.equal(binary.status, 200, JSON.stringify(binary.header));
    assert.equal(binary.contentType, 'application/octet-stream');
    assert.equal(binary.header.id, 'b-1');
    assert.deepEqual(
      binary.header.outputs.map((o) => [o.name, o.datatype, o.shape, o.parameters, o.data]),
      [
        ['embedding', 'FP32', [3, 4], { binary_data_size: 48 }, undefined],
        ['bucket', 'INT64', [3], { binary_data_size: 24 }, undefined],
      ],
    );
    const embedding = new Float32Array(binary.binary.embedding!.buffer);
    const bucket = new BigInt64Array(binary.binary.bucket!.buffer);
    assert.deepEqual(Array.from(embedding), json.header.outputs[0]!.data);
    assert.deepEqual(Array.from(bucket, Number), json.header.outputs[1]!.data);
    const direct = await runDirect(multiPath, { features: f32(features, [3, 6]), category: i64([4, 0, 2], [3]) });
    assert.deepEqual(embedding, direct.embedding!.data);
    assert.deepEqual(bucket, direct.bucket!.data);
  });

  it('mixes JSON and binary inputs, and binary and JSON outputs chosen per output', async () => {
    const features = floats(2 * 6, 5);
    const body = tritonBody(
      {
        inputs: [
          { name: 'features', shape: [2, 6], datatype: 'FP32', parameters: { binary_data_size: features.byteLength } },
          { name: 'category', shape: [2], datatype: 'INT64', data: [1, 3] },
        ],
        // The request-wide default says binary; bucket asks for JSON, embedding for binary.
        parameters: { binary_data_output: true },
        outputs: [
          { name: 'bucket', parameters: { binary_data: false } },
          { name: 'embedding', parameters: { binary_data: true } },
        ],
      },
      bytesOf(features),
    );
    const res = await binaryPost('multi-io', body);
    assert.equal(res.status, 200, JSON.stringify(res.header));
    const direct = await runDirect(multiPath, { features: f32(features, [2, 6]), category: i64([1, 3], [2]) });
    assert.deepEqual(
      res.header.outputs.map((o) => o.name),
      ['bucket', 'embedding'],
    );
    assert.deepEqual(res.header.outputs[0]!.data, Array.from(direct.bucket!.data as BigInt64Array, Number));
    assert.equal(res.header.outputs[0]!.parameters, undefined);
    assert.deepEqual(new Float32Array(res.binary.embedding!.buffer), direct.embedding!.data);

    // A plain JSON request may ask for binary outputs too; without any ask, the answer is plain JSON.
    const jsonIn = await jsonPost('multi-io', {
      inputs: [
        { name: 'features', shape: [2, 6], datatype: 'FP32', data: Array.from(features) },
        { name: 'category', shape: [2], datatype: 'INT64', data: [1, 3] },
      ],
      outputs: [{ name: 'embedding', parameters: { binary_data: true } }],
    });
    assert.deepEqual(new Float32Array(jsonIn.binary.embedding!.buffer), direct.embedding!.data);
    const plain = await jsonPost('multi-io', {
      inputs: [
        { name: 'features', shape: [2, 6], datatype: 'FP32', data: Array.from(features) },
        { name: 'category', shape: [2], datatype: 'INT64', data: [1, 3] },
      ],
    });
    assert.match(plain.contentType, /^application\/json/);
    assert.deepEqual(Float32Array.from(plain.header.outputs[0]!.data as number[]), direct.embedding!.data);
  });

  it('carries BOOL as one byte per element and FP16 as raw half-float bits, both ways', async () => {
    const flags = Uint8Array.from([1, 0, 1, 0, 0, 1]);
    const half = Uint16Array.from([0x3c00, 0x4000, 0xc200, 0x3800, 0x0000, 0x4500]); // 1, 2, -3, 0.5, 0, 5
    const res = await binaryPost(
      'flags',
      tritonBody(
        {
          inputs: [
            { name: 'flags', shape: [2, 3], datatype: 'BOOL', parameters: { binary_data_size: 6 } },
            { name: 'half', shape: [2, 3], datatype: 'FP16', parameters: { binary_data_size: 12 } },
          ],
          parameters: { binary_data_output: true },
        },
        flags,
        bytesOf(half),
      ),
    );
    assert.equal(res.status, 200, JSON.stringify(res.header));
    const direct = await runDirect(flagsPath, {
      flags: { dtype: 'bool', shape: [2, 3], data: flags },
      half: { dtype: 'float16', shape: [2, 3], data: half },
    });
    assert.deepEqual(
      res.header.outputs.map((o) => [o.name, o.datatype, o.parameters?.binary_data_size]),
      [
        ['inverted', 'BOOL', 6],
        ['masked', 'FP16', 12],
        ['squared', 'FP16', 12],
      ],
    );
    assert.deepEqual(Array.from(res.binary.inverted!), [0, 1, 0, 1, 1, 0]);
    assert.deepEqual(new Uint16Array(res.binary.masked!.buffer), direct.masked!.data);
    assert.deepEqual(new Uint16Array(res.binary.squared!.buffer), direct.squared!.data);
    // The JSON answer to the same request, BOOL as true/false, agrees.
    const json = await jsonPost('flags', {
      inputs: [
        { name: 'flags', shape: [2, 3], datatype: 'BOOL', data: [true, false, true, false, false, true] },
        { name: 'half', shape: [2, 3], datatype: 'FP16', data: [1, 2, -3, 0.5, 0, 5] },
      ],
    });
    assert.equal(json.status, 200, JSON.stringify(json.header));
    assert.deepEqual(json.header.outputs[0]!.data, [false, true, false, true, true, false]);
    assert.deepEqual(json.header.outputs[2]!.data, [1, 4, 9, 0.25, 0, 25]);

    const bad = await binaryPost(
      'flags',
      tritonBody(
        {
          inputs: [
            { name: 'flags', shape: [1, 3], datatype: 'BOOL', parameters: { binary_data_size: 3 } },
            { name: 'half', shape: [1, 3], datatype: 'FP16', data: [1, 2, 3] },
          ],
        },
        Uint8Array.from([1, 2, 0]),
      ),
    );
    assert.equal(bad.status, 400);
    assert.equal(bad.header.error!.param, 'flags');
    assert.match(bad.header.error!.message, /BOOL element 1 is byte 2, but BOOL needs 0 or 1/);
  });

  it('answers the ResNet input sent as binary exactly as sent as JSON', async () => {
    const image = floats(3 * 224 * 224, 77);
    const json = await jsonPost('resnet-tiny', {
      inputs: [{ name: 'input', shape: [1, 3, 224, 224], datatype: 'FP32', data: Array.from(image) }],
    });
    const binary = await binaryPost(
      'resnet-tiny',
      tritonBody(
        {
          inputs: [
            {
              name: 'input',
              shape: [1, 3, 224, 224],
              datatype: 'FP32',
              parameters: { binary_data_size: image.byteLength },
            },
          ],
          outputs: [{ name: 'logits', parameters: { binary_data: true } }],
        },
        bytesOf(image),
      ),
    );
    assert.equal(binary.status, 200, JSON.stringify(binary.header));
    assert.deepEqual(Array.from(new Float32Array(binary.binary.logits!.buffer)), json.header.outputs[0]!.data);
  });

  it("reads a body laid out byte for byte as Triton's client library sends it, with no content type, chunked or gzipped", async () => {
    const rows = floats(2 * 4, 3);
    // tritonclient.http: InferInput.set_data_from_numpy(binary_data=True) and no requested outputs, so the request
    // asks for every output in binary; json.dumps spacing; no Content-Type header.
    const header =
      '{"inputs": [{"name": "input", "shape": [2, 4], "datatype": "FP32", "parameters": {"binary_data_size": 32}}], "parameters": {"binary_data_output": true}}';
    const body = Buffer.concat([Buffer.from(header), bytesOf(rows)]);
    const direct = await runDirect(mlpPath, { input: f32(rows, [2, 4]) });
    const check = (res: Decoded) => {
      assert.equal(res.status, 200, JSON.stringify(res.header));
      assert.deepEqual(
        res.header.outputs.map((o) => [o.name, o.datatype, o.shape, o.parameters]),
        [
          ['probabilities', 'FP32', [2, 3], { binary_data_size: 24 }],
          ['label', 'INT64', [2], { binary_data_size: 16 }],
        ],
      );
      assert.deepEqual(new Float32Array(res.binary.probabilities!.buffer), direct.probabilities!.data);
      assert.deepEqual(new BigInt64Array(res.binary.label!.buffer), direct.label!.data);
    };
    const lengthHeader = { 'inference-header-content-length': String(Buffer.byteLength(header)) };
    check(await post('mlp-classifier', body, lengthHeader).then(decode));
    // The same bytes streamed without a Content-Length (chunked), and gzipped as the client's request_compression_algorithm does.
    const chunked = new ReadableStream<Uint8Array>({
      start(controller) {
        for (let at = 0; at < body.length; at += 17) controller.enqueue(body.subarray(at, at + 17));
        controller.close();
      },
    });
    const streamed = await fetch(new URL('/v2/models/mlp-classifier/infer', kit.url), {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN_KEY}`, ...lengthHeader },
      body: chunked,
      duplex: 'half',
    } as RequestInit);
    check(await decode(streamed));
    check(await post('mlp-classifier', gzipSync(body), { ...lengthHeader, 'content-encoding': 'gzip' }).then(decode));
  });

  it('answers bad framing with 400 and an error object naming the input', async () => {
    const rows = floats(2 * 4, 3);
    const input = (extra: Record<string, unknown>) => ({ name: 'input', shape: [2, 4], datatype: 'FP32', ...extra });
    const expect400 = async (res: Decoded, code: string, message: RegExp, param?: string) => {
      assert.equal(res.status, 400, JSON.stringify(res.header));
      assert.match(res.contentType, /^application\/json/);
      assert.equal(res.header.error!.code, code);
      assert.match(res.header.error!.message, message);
      assert.equal(res.header.error!.param, param);
    };
    const built = tritonBody({ inputs: [input({ parameters: { binary_data_size: 32 } })] }, bytesOf(rows));
    await expect400(
      await binaryPost('mlp-classifier', { body: built.body, headerLength: built.body.length + 5 }),
      'invalid_binary_header',
      /says the JSON inference header is \d+ bytes, but the whole body holds only \d+/,
    );
    await expect400(
      await post('mlp-classifier', built.body, { 'inference-header-content-length': 'ten' }).then(decode),
      'invalid_binary_header',
      /'ten', which is not a byte count/,
    );
    await expect400(
      await binaryPost(
        'mlp-classifier',
        tritonBody({ inputs: [input({ parameters: { binary_data_size: 64 } })] }, bytesOf(rows)),
      ),
      'invalid_binary_data',
      /input 'input' has binary_data_size 64, but only 32 bytes of binary data follow/,
      'input',
    );
    await expect400(
      await binaryPost(
        'mlp-classifier',
        tritonBody({ inputs: [input({ parameters: { binary_data_size: 28 } })] }, bytesOf(rows).subarray(0, 28)),
      ),
      'invalid_binary_data',
      /input 'input' has binary_data_size 28, but shape \[2,4\] of FP32 is 8 × 4 = 32 bytes/,
      'input',
    );
    await expect400(
      await binaryPost(
        'mlp-classifier',
        tritonBody(
          { inputs: [input({ parameters: { binary_data_size: 32 } })] },
          bytesOf(rows),
          Uint8Array.of(1, 2, 3),
        ),
      ),
      'invalid_binary_data',
      /35 bytes of binary data after its JSON inference header, but the inputs' binary_data_size add up to 32/,
      'input',
    );
    await expect400(
      await jsonPost('mlp-classifier', { inputs: [input({ parameters: { binary_data_size: 32 } })] }),
      'invalid_binary_data',
      /input 'input' has parameters.binary_data_size, but the request has no binary data/,
      'input',
    );
    await expect400(
      await binaryPost(
        'mlp-classifier',
        tritonBody(
          { inputs: [input({ data: Array.from(rows), parameters: { binary_data_size: 32 } })] },
          bytesOf(rows),
        ),
      ),
      'invalid_binary_data',
      /input 'input' has both data and parameters.binary_data_size/,
      'input',
    );
    // BYTES: each element a 4-byte little-endian length and its bytes; a length past the end is bad framing, and a
    // well-framed BYTES tensor is refused because no model here takes strings.
    const word = (s: string) => Buffer.concat([Buffer.from(Uint32Array.of(s.length).buffer), Buffer.from(s)]);
    const strings = Buffer.concat([word('cat'), word('hippo')]);
    await expect400(
      await binaryPost(
        'mlp-classifier',
        tritonBody(
          {
            inputs: [
              { name: 'text', shape: [2], datatype: 'BYTES', parameters: { binary_data_size: strings.length - 1 } },
            ],
          },
          strings.subarray(0, strings.length - 1),
        ),
      ),
      'invalid_binary_data',
      /input 'text': BYTES element 1 is 5 bytes long, but only 4 of its binary_data_size are left/,
      'text',
    );
    await expect400(
      await binaryPost(
        'mlp-classifier',
        tritonBody(
          {
            inputs: [{ name: 'text', shape: [3], datatype: 'BYTES', parameters: { binary_data_size: strings.length } }],
          },
          strings,
        ),
      ),
      'invalid_binary_data',
      /input 'text' has shape of 3 elements, but its BYTES data holds 2/,
      'text',
    );
    await expect400(
      await binaryPost(
        'mlp-classifier',
        tritonBody(
          {
            inputs: [{ name: 'text', shape: [2], datatype: 'BYTES', parameters: { binary_data_size: strings.length } }],
          },
          strings,
        ),
      ),
      'unknown_input',
      /has no input named 'text'/,
      'text',
    );
    await expect400(
      await post('mlp-classifier', Buffer.concat([Buffer.from('{"inputs": ['), bytesOf(rows)]), {
        'inference-header-content-length': '12',
      }).then(decode),
      'invalid_json',
      /JSON inference header .* is not valid JSON/,
    );
  });

  it('views aligned tensor bytes over the received body without a copy, and copies only misaligned ones', () => {
    const body = new Uint8Array(8 + 16 + 3 + 16);
    const binary = body.subarray(8);
    const request = {
      inputs: [
        { name: 'a', shape: [4], datatype: 'FP32', parameters: { binary_data_size: 16 } },
        { name: 'b', shape: [3], datatype: 'UINT8', parameters: { binary_data_size: 3 } },
        { name: 'c', shape: [4], datatype: 'FP32', parameters: { binary_data_size: 16 } },
      ],
    };
    new Float32Array(body.buffer, 8, 4).set([1, 2, 3, 4]);
    body.set([7, 8, 9], 24);
    new DataView(body.buffer).setFloat32(27, 5.5, true);
    attachBinaryInputs(request, binary);
    const [a, b, c] = request.inputs.map((i) => (i as { data?: ArrayBufferView }).data!);
    assert.equal(a!.buffer, body.buffer, 'aligned FP32 data is a view of the body');
    assert.deepEqual(Array.from(a as Float32Array), [1, 2, 3, 4]);
    assert.equal(b!.buffer, body.buffer);
    assert.deepEqual(Array.from(b as Uint8Array), [7, 8, 9]);
    assert.notEqual(c!.buffer, body.buffer, 'FP32 data at an odd offset is copied once');
    assert.equal((c as Float32Array)[0], 5.5);
  });
});
