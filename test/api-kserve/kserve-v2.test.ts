import { strict as assert } from 'node:assert';
import { rmSync } from 'node:fs';
import type { TestKernel } from '@nucleus/sdk/testing';
import { tempDir } from '../helpers/paths.js';
import { builtinModel, f32, floats, i64, runDirect, scaleModel, writeVersion } from '../engine/engine-fixtures.js';
import { call, errorOf, startKServe } from './kserve-fixtures.js';

interface InferResponse {
  model_name: string;
  model_version: string;
  id?: string;
  outputs: Array<{ name: string; datatype: string; shape: number[]; data: number[] }>;
}

describe('KServe v2 REST over loopback', () => {
  let kit: TestKernel;
  before(async () => {
    kit = await startKServe();
  });
  after(() => kit.stop());

  it('answers server metadata, liveness and readiness', async () => {
    const meta = await kit.request('/v2');
    assert.equal(meta.status, 200);
    assert.deepEqual(meta.body, {
      name: 'nucleus',
      version: '0.1.0',
      extensions: ['model_repository', 'binary_tensor_data'],
    });
    assert.deepEqual((await kit.request('/v2/health/live')).body, { live: true });
    const ready = await kit.request('/v2/health/ready');
    assert.equal(ready.status, 200);
    assert.deepEqual(ready.body, { ready: true });
  });

  it('describes a model: versions, platform, inputs and outputs with datatypes and -1 for variable dims', async () => {
    const res = await call(kit, '/v2/models/multi-io');
    assert.equal(res.status, 200);
    assert.deepEqual(res.body, {
      name: 'multi-io',
      versions: ['1'],
      platform: 'onnxruntime_onnx',
      inputs: [
        { name: 'features', datatype: 'FP32', shape: [-1, 6] },
        { name: 'category', datatype: 'INT64', shape: [-1] },
      ],
      outputs: [
        { name: 'embedding', datatype: 'FP32', shape: [-1, 4] },
        { name: 'bucket', datatype: 'INT64', shape: [-1] },
      ],
    });
    assert.deepEqual((await call(kit, '/v2/models/multi-io/versions/1')).body, res.body);
    const ready = await call(kit, '/v2/models/resnet-tiny/versions/1/ready');
    assert.deepEqual([ready.status, ready.body], [200, { name: 'resnet-tiny', version: '1', ready: true }]);
  });

  it('infers with the same numbers as a direct ORT run, twice the same, echoing the id', async () => {
    const mlp = await builtinModel('mlp-classifier');
    const rows = floats(3 * 4, 42);
    const direct = await runDirect(mlp.modelPath, { input: f32(rows, [3, 4]) });
    const body = { id: 'req-7', inputs: [{ name: 'input', shape: [3, 4], datatype: 'FP32', data: Array.from(rows) }] };
    const first = await call(kit, '/v2/models/mlp-classifier/infer', { body });
    assert.equal(first.status, 200, JSON.stringify(first.body));
    const r = first.body as InferResponse;
    assert.equal(r.model_name, 'mlp-classifier');
    assert.equal(r.model_version, '1');
    assert.equal(r.id, 'req-7');
    assert.deepEqual(
      r.outputs.map((o) => [o.name, o.datatype, o.shape]),
      [
        ['probabilities', 'FP32', [3, 3]],
        ['label', 'INT64', [3]],
      ],
    );
    assert.deepEqual(Float32Array.from(r.outputs[0]!.data), direct.probabilities!.data);
    assert.deepEqual(r.outputs[1]!.data, Array.from(direct.label!.data as BigInt64Array, Number));
    const second = await call(kit, '/v2/models/mlp-classifier/versions/1/infer', { body });
    assert.deepEqual(second.body, first.body);
  });

  it('takes nested data, several inputs of different datatypes, and an outputs filter', async () => {
    const multi = await builtinModel('multi-io');
    const features = [
      [0.5, -1, 2, 0, 1, 3],
      [1, 1, 1, 1, 1, 1],
    ];
    const res = await call(kit, '/v2/models/multi-io/infer', {
      body: {
        inputs: [
          { name: 'features', shape: [2, 6], datatype: 'FP32', data: features },
          { name: 'category', shape: [2], datatype: 'INT64', data: [4, 0] },
        ],
        outputs: [{ name: 'embedding' }],
      },
    });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    const outputs = (res.body as InferResponse).outputs;
    assert.deepEqual(
      outputs.map((o) => o.name),
      ['embedding'],
    );
    const direct = await runDirect(multi.modelPath, {
      features: f32(features.flat(), [2, 6]),
      category: i64([4, 0], [2]),
    });
    assert.deepEqual(Float32Array.from(outputs[0]!.data), direct.embedding!.data);
  });

  it('answers a wrong shape, datatype or input name with 400 naming the input and what was expected', async () => {
    const infer = (inputs: unknown[]) => call(kit, '/v2/models/mlp-classifier/infer', { body: { inputs } });
    const shape = await infer([{ name: 'input', shape: [1, 3], datatype: 'FP32', data: [1, 2, 3] }]);
    assert.equal(shape.status, 400);
    assert.deepEqual(Object.keys(errorOf(shape)).sort(), ['code', 'message', 'param', 'type']);
    assert.equal(errorOf(shape).code, 'invalid_shape');
    assert.equal(errorOf(shape).type, 'invalid_request_error');
    assert.match(errorOf(shape).message, /input 'input' has shape \[1,3\], but .* expects \[-1,4\]/);

    const dtype = await infer([{ name: 'input', shape: [1, 4], datatype: 'INT32', data: [1, 2, 3, 4] }]);
    assert.equal(dtype.status, 400);
    assert.match(
      errorOf(dtype).message,
      /input 'input' has datatype INT32, but model 'mlp-classifier' version '1' expects FP32/,
    );

    const name = await infer([{ name: 'pixels', shape: [1, 4], datatype: 'FP32', data: [1, 2, 3, 4] }]);
    assert.equal(name.status, 400);
    assert.equal(errorOf(name).param, 'pixels');
    assert.match(errorOf(name).message, /no input named 'pixels'; its inputs are input \(FP32 \[-1,4\]\)/);

    const count = await infer([{ name: 'input', shape: [2, 4], datatype: 'FP32', data: [1, 2, 3, 4] }]);
    assert.equal(count.status, 400);
    assert.match(errorOf(count).message, /input 'input' has shape \[2,4\], which holds 8 values, but its data holds 4/);

    const value = await infer([{ name: 'input', shape: [1, 4], datatype: 'FP32', data: [1, 'two', 3, 4] }]);
    assert.equal(value.status, 400);
    assert.match(errorOf(value).message, /input 'input': element 1 is "two", but FP32 needs a number/);

    const bytes = await infer([{ name: 'input', shape: [1], datatype: 'BYTES', data: ['x'] }]);
    assert.equal(bytes.status, 400);
    assert.match(errorOf(bytes).message, /datatype 'BYTES', which this server does not serve/);

    const body = await call(kit, '/v2/models/mlp-classifier/infer', {
      body: { inputs: [{ name: 'input', datatype: 'FP32', data: [] }] },
    });
    assert.equal(body.status, 400);
    assert.equal(errorOf(body).code, 'invalid_body');
    assert.match(errorOf(body).message, /inputs\.0 must have required property 'shape'/);
  });

  it('answers an unknown model or version with 404', async () => {
    const body = { inputs: [{ name: 'input', shape: [1, 4], datatype: 'FP32', data: [1, 2, 3, 4] }] };
    const model = await call(kit, '/v2/models/no-such-model/infer', { body });
    assert.equal(model.status, 404);
    assert.equal(errorOf(model).code, 'model_not_found');
    assert.equal(errorOf(model).type, 'not_found_error');
    const version = await call(kit, '/v2/models/mlp-classifier/versions/4/infer', { body });
    assert.equal(version.status, 404);
    assert.equal(errorOf(version).code, 'version_not_found');
    assert.equal((await call(kit, '/v2/models/no-such-model')).status, 404);
    assert.equal((await call(kit, '/v2/models/no-such-model/ready')).status, 404);
  });

  it('runs the encoder over KServe with INT64 inputs', async () => {
    const bert = await builtinModel('bert-tiny');
    const ids = [101, 7, 99, 4, 102];
    const res = await call(kit, '/v2/models/bert-tiny/infer', {
      body: {
        inputs: [
          { name: 'input_ids', shape: [1, 5], datatype: 'INT64', data: [ids] },
          { name: 'attention_mask', shape: [1, 5], datatype: 'INT64', data: [[1, 1, 1, 1, 1]] },
        ],
      },
    });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    const out = (res.body as InferResponse).outputs[0]!;
    assert.deepEqual(out.shape, [1, 5, 32]);
    const direct = await runDirect(bert.modelPath, {
      input_ids: i64(ids, [1, 5]),
      attention_mask: i64([1, 1, 1, 1, 1], [1, 5]),
    });
    assert.deepEqual(Float32Array.from(out.data), direct.last_hidden_state!.data);
  });

  it('lists, unloads and loads models through the repository extension, for admins only', async () => {
    const index = await call(kit, '/v2/repository/index', { method: 'POST', body: {} });
    assert.equal(index.status, 200);
    assert.deepEqual(
      (index.body as Array<{ name: string; version: string; state: string }>).map(
        (r) => `${r.name}/${r.version}/${r.state}`,
      ),
      [
        'bert-tiny/1/READY',
        'mlp-classifier/1/READY',
        'multi-io/1/READY',
        'resnet-tiny/1/READY',
        'stories260K/1/READY',
        'tabular-classifier/1/READY',
        'tiny-llama/1/READY',
      ],
    );
    assert.equal(
      (await kit.request('/v2/repository/models/tabular-classifier/unload', { method: 'POST' })).status,
      401,
    );

    const unload = await call(kit, '/v2/repository/models/tabular-classifier/unload', { method: 'POST' });
    assert.deepEqual([unload.status, unload.body], [200, {}]);
    const notReady = await call(kit, '/v2/models/tabular-classifier/ready');
    assert.equal(notReady.status, 503);
    assert.equal((notReady.body as { ready: boolean }).ready, false);
    const refused = await call(kit, '/v2/models/tabular-classifier/infer', {
      body: { inputs: [{ name: 'features', shape: [1, 8], datatype: 'FP32', data: new Array(8).fill(0) }] },
    });
    assert.equal(refused.status, 503);
    assert.equal(errorOf(refused).code, 'model_not_ready');
    const unavailable = await call(kit, '/v2/repository/index', { method: 'POST', body: {} });
    assert.ok(
      (unavailable.body as Array<{ name: string; state: string }>).some(
        (r) => r.name === 'tabular-classifier' && r.state === 'UNAVAILABLE',
      ),
    );
    const readyOnly = await call(kit, '/v2/repository/index', { method: 'POST', body: { ready: true } });
    assert.equal((readyOnly.body as unknown[]).length, 6);

    const load = await call(kit, '/v2/repository/models/tabular-classifier/load', { method: 'POST' });
    assert.deepEqual([load.status, load.body], [200, {}]);
    assert.equal((await call(kit, '/v2/models/tabular-classifier/ready')).status, 200);
    const missing = await call(kit, '/v2/repository/models/ghost/load', { method: 'POST' });
    assert.equal(missing.status, 404);
  });
});

describe('KServe v2 with several versions', () => {
  let kit: TestKernel;
  let repo: string;
  before(async () => {
    repo = tempDir('kserve-versions');
    writeVersion(repo, 'scale', '1', scaleModel(1));
    writeVersion(repo, 'scale', '3', scaleModel(3));
    kit = await startKServe({ modelRepository: repo });
  });
  after(async () => {
    await kit.stop();
    rmSync(repo, { recursive: true, force: true });
  });

  it('addresses each version and serves the highest by default', async () => {
    const body = { inputs: [{ name: 'x', shape: [1, 4], datatype: 'FP32', data: [1, 2, 3, 4] }] };
    const v1 = (await call(kit, '/v2/models/scale/versions/1/infer', { body })).body as InferResponse;
    const v3 = (await call(kit, '/v2/models/scale/versions/3/infer', { body })).body as InferResponse;
    const latest = (await call(kit, '/v2/models/scale/infer', { body })).body as InferResponse;
    assert.deepEqual([v1.model_version, v1.outputs[0]!.data], ['1', [1, 2, 3, 4]]);
    assert.deepEqual([v3.model_version, v3.outputs[0]!.data], ['3', [3, 6, 9, 12]]);
    assert.equal(latest.model_version, '3');
    assert.deepEqual(((await call(kit, '/v2/models/scale')).body as { versions: string[] }).versions, ['1', '3']);
    assert.deepEqual(((await call(kit, '/v2/models/scale/versions/1')).body as { versions: string[] }).versions, ['1']);
  });
});
