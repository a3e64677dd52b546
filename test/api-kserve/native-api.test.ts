import { strict as assert } from 'node:assert';
import type { TestKernel } from '@nucleus/sdk/testing';
import { builtinModel, f32, i64, runDirect } from '../engine/engine-fixtures.js';
import { call, errorOf, startKServe } from './kserve-fixtures.js';

interface NativeResult {
  model: string;
  version: string;
  outputs: Record<string, unknown>;
  shapes: Record<string, number[]>;
  dtypes: Record<string, string>;
}

describe('native inference endpoints', () => {
  let kit: TestKernel;
  before(async () => {
    kit = await startKServe();
  });
  after(() => kit.stop());

  it('POST /infer takes nested lists and answers nested lists, matching a direct run', async () => {
    const mlp = await builtinModel('mlp-classifier');
    const rows = [
      [0.1, 0.2, 0.3, 0.4],
      [-1, 0, 1, 2],
    ];
    const res = await call(kit, '/infer', { body: { model: 'mlp-classifier', inputs: { input: rows } } });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    const r = res.body as NativeResult;
    assert.deepEqual(
      [r.model, r.version, r.shapes, r.dtypes],
      ['mlp-classifier', '1', { probabilities: [2, 3], label: [2] }, { probabilities: 'float32', label: 'int64' }],
    );
    const direct = await runDirect(mlp.modelPath, { input: f32(rows.flat(), [2, 4]) });
    assert.deepEqual(Float32Array.from((r.outputs.probabilities as number[][]).flat()), direct.probabilities!.data);
    assert.deepEqual(r.outputs.label, Array.from(direct.label!.data as BigInt64Array, Number));
  });

  it('POST /infer takes flat data with a shape, a version and an outputs filter; int64 inputs come from the model', async () => {
    const bert = await builtinModel('bert-tiny');
    const res = await call(kit, '/infer', {
      body: {
        model: 'bert-tiny',
        version: 1,
        inputs: {
          input_ids: { data: [5, 6, 7, 8], shape: [2, 2] },
          attention_mask: [
            [1, 1],
            [1, 0],
          ],
        },
        outputs: ['last_hidden_state'],
      },
    });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    const r = res.body as NativeResult;
    assert.deepEqual(r.shapes, { last_hidden_state: [2, 2, 32] });
    const direct = await runDirect(bert.modelPath, {
      input_ids: i64([5, 6, 7, 8], [2, 2]),
      attention_mask: i64([1, 1, 1, 0], [2, 2]),
    });
    assert.deepEqual(
      Float32Array.from((r.outputs.last_hidden_state as number[][][]).flat(2)),
      direct.last_hidden_state!.data,
    );
  });

  it('POST /infer refuses ragged lists, wrong shapes and unknown inputs with 400 naming the input', async () => {
    const ragged = await call(kit, '/infer', {
      body: {
        model: 'mlp-classifier',
        inputs: {
          input: [
            [1, 2, 3, 4],
            [1, 2, 3],
          ],
        },
      },
    });
    assert.equal(ragged.status, 400);
    assert.match(errorOf(ragged).message, /input 'input' is not rectangular: data\[1\] has 3 entries, expected 4/);
    const shape = await call(kit, '/infer', { body: { model: 'mlp-classifier', inputs: { input: [[1, 2, 3]] } } });
    assert.equal(shape.status, 400);
    assert.match(errorOf(shape).message, /input 'input' has shape \[1,3\].*expects \[-1,4\]/);
    const name = await call(kit, '/infer', { body: { model: 'mlp-classifier', inputs: { image: [[1, 2, 3, 4]] } } });
    assert.equal(name.status, 400);
    assert.equal(errorOf(name).param, 'image');
    const dtype = await call(kit, '/infer', {
      body: { model: 'mlp-classifier', inputs: { input: { data: [1, 2, 3, 4], shape: [1, 4], dtype: 'int64' } } },
    });
    assert.equal(dtype.status, 400);
    assert.match(
      errorOf(dtype).message,
      /input 'input' is int64, but model 'mlp-classifier' version '1' expects float32/,
    );
    const model = await call(kit, '/infer', { body: { model: 'ghost', inputs: { input: [[1]] } } });
    assert.equal(model.status, 404);
    const body = await call(kit, '/infer', { body: { inputs: { input: [[1]] } } });
    assert.equal(body.status, 400);
    assert.match(errorOf(body).message, /must have required property 'model'/);
  });

  it('POST /batch_infer answers every item, each failing on its own', async () => {
    const res = await call(kit, '/batch_infer', {
      body: {
        requests: [
          { model: 'mlp-classifier', inputs: { input: [[1, 2, 3, 4]] } },
          { model: 'ghost', inputs: { input: [[1, 2, 3, 4]] } },
          { model: 'mlp-classifier', inputs: { input: [[1, 2, 3]] } },
          { model: 'tabular-classifier', inputs: { features: [[0, 0, 0, 0, 0, 0, 0, 0]] } },
        ],
      },
    });
    assert.equal(res.status, 200);
    const results = (res.body as { results: Array<{ status: number; model?: string; error?: { code: string } }> })
      .results;
    assert.deepEqual(
      results.map((r) => [r.status, r.model ?? r.error!.code]),
      [
        [200, 'mlp-classifier'],
        [404, 'model_not_found'],
        [400, 'invalid_shape'],
        [200, 'tabular-classifier'],
      ],
    );
    const single = await call(kit, '/infer', { body: { model: 'mlp-classifier', inputs: { input: [[1, 2, 3, 4]] } } });
    assert.deepEqual((results[0] as unknown as NativeResult).outputs, (single.body as NativeResult).outputs);
  });

  it('GET /models lists models with versions, inputs, outputs and model.json metadata', async () => {
    const res = await call(kit, '/models');
    assert.equal(res.status, 200);
    const listed = (
      res.body as {
        models: Array<{ name: string; kind: string; defaultVersion: string; versions: Array<Record<string, unknown>> }>;
      }
    ).models;
    assert.deepEqual(
      listed.map((m) => `${m.name}:${m.kind}`),
      [
        'bert-tiny:tensor',
        'mlp-classifier:tensor',
        'multi-io:tensor',
        'resnet-tiny:tensor',
        'tabular-classifier:tensor',
        'stories260K:llm',
        'tiny-llama:llm',
        'bert-tiny:embedding',
      ],
    );
    const models = listed.filter((m) => m.kind === 'tensor');
    const tabular = models.find((m) => m.name === 'tabular-classifier')!.versions[0]!;
    assert.equal(tabular.state, 'ready');
    assert.equal((tabular.metadata as { framework: string }).framework, 'onnx');
    assert.ok((tabular.metadata as { preprocessing: { features: unknown[] } }).preprocessing.features.length === 8);
    assert.deepEqual(
      (tabular.inputs as Array<{ name: string; shape: number[] }>).map((t) => [t.name, t.shape]),
      [['features', [-1, 8]]],
    );
  });

  it('GET /status reports the backend, queue, batching and loaded versions of each model, and the backends', async () => {
    const res = await call(kit, '/status');
    assert.equal(res.status, 200);
    const body = res.body as {
      models: Array<{
        name: string;
        loadedVersions: string[];
        versions: Array<{
          backend: string;
          requestedBackend: string;
          queue: { queued: number };
          batching: { enabled: boolean };
        }>;
      }>;
      backends: Array<{ name: string; probe: { usable: boolean } }>;
    };
    const mlp = body.models.find((m) => m.name === 'mlp-classifier')!;
    assert.deepEqual(mlp.loadedVersions, ['1']);
    assert.equal(mlp.versions[0]!.backend, 'cpu');
    assert.equal(mlp.versions[0]!.requestedBackend, 'auto');
    assert.equal(mlp.versions[0]!.queue.queued, 0);
    assert.equal(mlp.versions[0]!.batching.enabled, true);
    assert.ok(body.backends.some((b) => b.name === 'cpu' && b.probe.usable));
  });
});
