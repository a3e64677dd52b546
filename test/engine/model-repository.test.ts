import { strict as assert } from 'node:assert';
import { appendFileSync, copyFileSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Nucleus } from '@nucleus/core';
import type { NucleusError, NucleusEvents } from '@nucleus/sdk';
import { tempDir } from '../helpers/paths.js';
import { writeUnusableBackend } from '../helpers/plugin-fixtures.js';
import { GraphBuilder, saveModel } from '@nucleus/sdk/onnx';
import { builtinModel, f32, floats, scaleModel, sha256, startKernel, writeVersion } from './engine-fixtures.js';

type Seen = Array<[string, unknown]>;

function record(k: Nucleus, seen: Seen): void {
  for (const type of ['model.loading', 'model.loaded', 'model.unloaded', 'model.failed', 'backend.fallback'] as const) {
    k.events.on(type, (payload: NucleusEvents[typeof type]) => seen.push([type, payload]));
  }
}

const x = f32([1, 2, 3, 4], [1, 4]);

describe('model repository and lifecycle', () => {
  let repo: string;
  let kernel: Nucleus;
  const seen: Seen = [];

  before(async () => {
    repo = tempDir('model-repo');
    writeVersion(repo, 'scale', '1', scaleModel(1), {
      description: 'Multiplies by one.',
      metrics: { accuracy: 0.5 },
      trainingDate: '2026-01-02',
      inputs: [{ name: 'x', dtype: 'float32', shape: ['batch', 4], description: 'Four numbers.' }],
      outputs: [{ name: 'y', description: 'The numbers, scaled.' }],
    });
    writeVersion(repo, 'scale', '2', scaleModel(2));
    writeVersion(repo, 'scale', '10', scaleModel(10));
    writeVersion(repo, 'tampered', '1', scaleModel(3), { sha256: 'ab'.repeat(32) });
    mkdirSync(join(repo, 'empty', '1'), { recursive: true });
    kernel = await startKernel({ modelRepository: repo }, { before: (k) => record(k, seen) });
  });
  after(async () => {
    await kernel.stop();
    rmSync(repo, { recursive: true, force: true });
  });

  it('loads every version, addresses each, and serves the highest by default (numerically: 10 > 2)', async () => {
    assert.deepEqual(
      kernel.inference.model('scale').versions.map((v) => [v.version, v.state]),
      [
        ['1', 'ready'],
        ['2', 'ready'],
        ['10', 'ready'],
      ],
    );
    assert.equal(kernel.inference.model('scale').defaultVersion, '10');
    for (const [version, factor] of [
      ['1', 1],
      ['2', 2],
      ['10', 10],
    ] as const) {
      const r = await kernel.inference.infer({ model: 'scale', version, inputs: { x } });
      assert.equal(r.version, version);
      assert.deepEqual(
        Array.from(r.outputs.y!.data as Float32Array),
        [1, 2, 3, 4].map((v) => v * factor),
      );
    }
    const byDefault = await kernel.inference.infer({ model: 'scale', inputs: { x } });
    assert.equal(byDefault.version, '10');
  });

  it('reads names, dtypes and shapes from the session (symbolic dims as -1) and descriptions from model.json', () => {
    const v1 = kernel.inference.get('scale', '1');
    assert.deepEqual(v1.inputs, [
      { name: 'x', dtype: 'float32', shape: [-1, 4], dimNames: ['batch', null], description: 'Four numbers.' },
    ]);
    assert.deepEqual(v1.outputs, [
      { name: 'y', dtype: 'float32', shape: [-1, 4], dimNames: ['batch', null], description: 'The numbers, scaled.' },
    ]);
    assert.equal(v1.metadata.description, 'Multiplies by one.');
    assert.deepEqual(v1.metadata.metrics, { accuracy: 0.5 });
    assert.equal(v1.metadata.trainingDate, '2026-01-02');
    assert.match(String(v1.metadata.sha256), /^[0-9a-f]{64}$/);
    assert.equal(v1.origin, 'repository');
  });

  it('describes a version as get() does, without the live batching and status, for the default version too', () => {
    for (const version of ['1', undefined]) {
      const { batching, status, ...rest } = kernel.inference.get('scale', version);
      assert.ok(batching && status, 'get() has the live parts');
      assert.deepEqual(kernel.inference.describe('scale', version), rest);
    }
    assert.equal(kernel.inference.describe('scale').version, '10');
    assert.throws(
      () => kernel.inference.describe('no-such-model'),
      (err: { status?: number }) => err.status === 404,
    );
  });

  it('refuses a model whose sha256 does not match its model.json, with the reason, and keeps serving the rest', async () => {
    const failed = seen.find(([type, p]) => type === 'model.failed' && (p as { model: string }).model === 'tampered');
    assert.ok(failed, 'model.failed was emitted for the tampered model');
    assert.match(
      (failed[1] as { error: string }).error,
      /has sha256 [0-9a-f]{64}, but .*model\.json says abab.*refusing to load it/,
    );
    const info = kernel.inference.get('tampered');
    assert.equal(info.state, 'failed');
    await assert.rejects(
      kernel.inference.infer({ model: 'tampered', inputs: { x } }),
      (err: NucleusError) => err.status === 503 && /sha256/.test(err.message),
    );
    const report = kernel.health.report();
    assert.equal(report.status, 'degraded');
    assert.ok(report.conditions.some((c) => c.key === 'model:tampered@1' && /sha256/.test(c.reason)));
    assert.ok(report.conditions.some((c) => c.key === 'model:empty@1' && /has no model\.onnx/.test(c.reason)));
  });

  it('emits loading then loaded for each version, with the backend', () => {
    const loaded = seen
      .filter(([t, p]) => t === 'model.loaded' && (p as { model: string }).model === 'scale')
      .map(([, p]) => p as NucleusEvents['model.loaded']);
    assert.deepEqual(loaded.map((p) => [p.version, p.backend]).sort(), [
      ['1', 'cpu'],
      ['10', 'cpu'],
      ['2', 'cpu'],
    ]);
    const first = seen.findIndex(([t, p]) => t === 'model.loading' && (p as { model: string }).model === 'scale');
    const done = seen.findIndex(([t, p]) => t === 'model.loaded' && (p as { model: string }).model === 'scale');
    assert.ok(first >= 0 && first < done);
  });

  it('unloads a version, falls back to the next highest, and loads it again on request', async () => {
    await kernel.inference.unload('scale', '10');
    assert.ok(seen.some(([t, p]) => t === 'model.unloaded' && (p as { version: string }).version === '10'));
    assert.equal(kernel.inference.get('scale', '10').state, 'unavailable');
    assert.equal((await kernel.inference.infer({ model: 'scale', inputs: { x } })).version, '2');
    await assert.rejects(
      kernel.inference.infer({ model: 'scale', version: '10', inputs: { x } }),
      (err: NucleusError) => err.status === 503,
    );
    const index = await kernel.inference.index();
    assert.deepEqual(
      index.filter((r) => r.name === 'scale').map((r) => [r.version, r.state]),
      [
        ['1', 'ready'],
        ['2', 'ready'],
        ['10', 'unavailable'],
      ],
    );
    await kernel.inference.load('scale');
    assert.equal((await kernel.inference.infer({ model: 'scale', inputs: { x } })).version, '10');
    await assert.rejects(kernel.inference.load('nothing-here'), (err: NucleusError) => err.status === 404);
  });

  it('answers unknown models and versions with 404 naming what exists', async () => {
    await assert.rejects(
      kernel.inference.infer({ model: 'nope', inputs: { x } }),
      (err: NucleusError) => err.status === 404 && err.code === 'model_not_found' && /scale/.test(err.message),
    );
    await assert.rejects(
      kernel.inference.infer({ model: 'scale', version: '3', inputs: { x } }),
      (err: NucleusError) =>
        err.status === 404 && err.code === 'version_not_found' && /versions: 1, 2, 10/.test(err.message),
    );
  });
});

describe('configured models', () => {
  it('takes a model.onnx file, a version folder or a folder of versions, and reports a missing path', async () => {
    const root = tempDir('configured');
    const mlp = await builtinModel('mlp-classifier');
    const fileOnly = join(root, 'loose');
    mkdirSync(fileOnly);
    copyFileSync(mlp.modelPath, join(fileOnly, 'classifier.onnx'));
    writeVersion(join(root, 'versions'), 'scale', '4', scaleModel(4));
    writeVersion(join(root, 'versions'), 'scale', '5', scaleModel(5));
    const seen: Seen = [];
    const kernel = await startKernel(
      {
        models: [
          { name: 'from-file', path: join(fileOnly, 'classifier.onnx'), version: '7' },
          { name: 'from-version-dir', path: mlp.dir },
          { name: 'from-model-dir', path: join(root, 'versions', 'scale') },
          { name: 'missing', path: join(root, 'does-not-exist.onnx') },
        ],
      },
      { before: (k) => record(k, seen) },
    );
    try {
      assert.deepEqual(
        kernel.inference.list().map((m) => [m.name, m.versions.map((v) => `${v.version}:${v.state}`)]),
        [
          ['from-file', ['7:ready']],
          ['from-model-dir', ['4:ready', '5:ready']],
          ['from-version-dir', ['1:ready']],
          ['missing', ['1:failed']],
        ],
      );
      assert.match(kernel.inference.get('missing').reason!, /does-not-exist\.onnx does not exist/);
      // model.json beside a version folder is read (the built-in's labels).
      assert.deepEqual(kernel.inference.get('from-version-dir').metadata.labels, ['class_0', 'class_1', 'class_2']);
      const r = await kernel.inference.infer({ model: 'from-file', inputs: { input: x } });
      assert.deepEqual(r.outputs.probabilities!.shape, [1, 3]);
    } finally {
      await kernel.stop();
      rmSync(root, { recursive: true, force: true });
    }
  });

  it('falls back to CPU when the configured backend is unusable: backend.fallback, a degraded /ready, and the reason in status', async () => {
    const mlp = await builtinModel('mlp-classifier');
    const seen: Seen = [];
    const plugins = tempDir('unusable-backend');
    writeUnusableBackend(plugins, 'nogpu', 'no driver');
    const kernel = await startKernel(
      { backend: 'nogpu', 'plugins.dirs': [plugins], models: [{ name: 'mlp', path: mlp.dir }] },
      { before: (k) => record(k, seen) },
    );
    try {
      const fallback = seen.find(([t]) => t === 'backend.fallback')?.[1] as
        | NucleusEvents['backend.fallback']
        | undefined;
      assert.ok(fallback);
      assert.equal(fallback.requested, 'nogpu');
      assert.equal(fallback.chosen, 'cpu');
      const status = kernel.inference.get('mlp').status!;
      assert.equal(status.backend, 'cpu');
      assert.equal(status.requestedBackend, 'nogpu');
      assert.equal(status.fallbackReason, "backend 'nogpu' is unusable: no driver; running on cpu instead");
      const report = kernel.health.report();
      assert.equal(report.status, 'degraded');
      assert.ok(report.conditions.some((c) => c.key === 'backend:mlp@1' && c.severity === 'degraded'));
      const r = await kernel.inference.infer({ model: 'mlp', inputs: { input: x } });
      assert.deepEqual(r.outputs.label!.shape, [1]);
    } finally {
      await kernel.stop();
      rmSync(plugins, { recursive: true, force: true });
    }
  });

  it('refuses to start with a backend no plugin installs, naming those that are; a model naming one fails alone', async () => {
    const mlp = await builtinModel('mlp-classifier');
    const plugins = tempDir('unusable-backend');
    writeUnusableBackend(plugins, 'nogpu');
    try {
      for (const name of ['tpu', 'cdua']) {
        await assert.rejects(
          startKernel({ backend: name, 'plugins.dirs': [plugins], models: [{ name: 'mlp', path: mlp.dir }] }),
          (err: Error) => {
            assert.equal(err.name, 'ConfigError');
            assert.equal(
              err.message,
              `Invalid configuration: backend '${name}' (from command line) is not installed; the backends installed are auto, nogpu, cpu`,
            );
            return true;
          },
        );
      }
      const kernel = await startKernel({
        'plugins.dirs': [plugins],
        models: [
          { name: 'mlp', path: mlp.dir, backend: 'cdua' },
          { name: 'ok', path: mlp.dir },
        ],
      });
      try {
        const failed = kernel.inference.model('mlp').versions[0]!;
        assert.equal(failed.state, 'failed');
        assert.equal(failed.reason, "backend 'cdua' is not installed; the backends installed are auto, nogpu, cpu");
        assert.equal(kernel.inference.model('ok').versions[0]!.state, 'ready');
        assert.deepEqual(kernel.requiredModelsMissing(), [
          {
            model: 'mlp',
            reason: "backend 'cdua' is not installed; the backends installed are auto, nogpu, cpu",
            badSource: false,
          },
        ]);
      } finally {
        await kernel.stop();
      }
    } finally {
      rmSync(plugins, { recursive: true, force: true });
    }
  });

  it('spreads batches over several workers per version (workers.perModel), with the same answers', async () => {
    const mlp = await builtinModel('mlp-classifier');
    const kernel = await startKernel({
      'workers.perModel': 2,
      models: [{ name: 'mlp', path: mlp.dir, maxBatchSize: 2, maxQueueDelayMs: 0 }],
    });
    try {
      const status = () => kernel.inference.get('mlp').status!;
      assert.equal(status().workers, 2);
      const workers = kernel.inference.loadedModel('mlp').pool.workers;
      const before = workers.map((w) => w.runs);
      const results = await Promise.all(
        Array.from({ length: 12 }, (_, i) =>
          kernel.inference.infer({ model: 'mlp', inputs: { input: f32([i, 1, 2, 3], [1, 4]) } }),
        ),
      );
      const ran = workers.map((w, k) => w.runs - before[k]!);
      assert.ok(
        ran.every((n) => n > 0),
        `runs per worker: ${ran.join(', ')}`,
      );
      for (const [i, r] of results.entries()) {
        const alone = await kernel.inference.infer({ model: 'mlp', inputs: { input: f32([i, 1, 2, 3], [1, 4]) } });
        assert.deepEqual(r.outputs, alone.outputs);
      }
    } finally {
      await kernel.stop();
    }
  });

  it('serves the built-in models when nothing is configured', async () => {
    const kernel = await startKernel({}, { builtinModels: true });
    try {
      assert.deepEqual(
        kernel.inference.list().map((m) => [m.name, m.defaultVersion, m.versions[0]!.origin]),
        [
          ['bert-tiny', '1', 'builtin'],
          ['mlp-classifier', '1', 'builtin'],
          ['multi-io', '1', 'builtin'],
          ['resnet-tiny', '1', 'builtin'],
          ['tabular-classifier', '1', 'builtin'],
        ],
      );
    } finally {
      await kernel.stop();
    }
  });

  it('serves only the built-ins a one-model runtime names, tensor and LLM alike', async () => {
    const kernel = await startKernel({}, { builtinModels: ['mlp-classifier'] });
    try {
      assert.deepEqual(
        kernel.inference.list().map((m) => m.name),
        ['mlp-classifier'],
      );
      assert.deepEqual(kernel.generation.list(), []);
    } finally {
      await kernel.stop();
    }
  });

  it('loads a model with external data, checking the data file against model.json too', async () => {
    const root = tempDir('external-data');
    const weights = floats(64 * 8, 4);
    const build = (): GraphBuilder => {
      const g = new GraphBuilder('ext');
      const y = g.ops.matMul(g.input('x', 'float32', ['batch', 64]), g.initializer('w', weights, [64, 8]), {
        outputs: ['y'],
      });
      g.output(y, 'float32', ['batch', 8]);
      return g;
    };
    const write = async (name: string): Promise<string> => {
      const dir = join(root, name, '1');
      const saved = await saveModel(join(dir, 'model.onnx'), build().toModel({ producer: 'nucleus-test' }), {
        externalDataThresholdBytes: 256,
      });
      assert.deepEqual(saved.externalTensors, ['w']);
      const manifest = {
        sha256: sha256(readFileSync(join(dir, 'model.onnx'))),
        externalData: { 'model.onnx.data': sha256(readFileSync(saved.externalDataPath!)) },
      };
      writeFileSync(join(dir, 'model.json'), JSON.stringify(manifest));
      return saved.externalDataPath!;
    };
    await write('ext');
    appendFileSync(await write('ext-tampered'), Buffer.from([1, 2, 3, 4]));
    const kernel = await startKernel({ modelRepository: root });
    try {
      const r = await kernel.inference.infer({ model: 'ext', inputs: { x: f32(new Array(64).fill(1), [1, 64]) } });
      const expected = Array.from({ length: 8 }, (_, j) =>
        Math.fround(Array.from({ length: 64 }, (_, i) => weights[i * 8 + j]!).reduce((a, v) => a + v, 0)),
      );
      (r.outputs.y!.data as Float32Array).forEach((v, j) =>
        assert.ok(Math.abs(v - expected[j]!) < 1e-4, `y[${j}] = ${v}, expected ${expected[j]}`),
      );
      const tampered = kernel.inference.get('ext-tampered');
      assert.equal(tampered.state, 'failed');
      assert.match(tampered.reason!, /model\.onnx\.data has sha256 .* refusing to load it/);
    } finally {
      await kernel.stop();
      rmSync(root, { recursive: true, force: true });
    }
  });

  it('refuses a model.json that is not valid, naming the field', async () => {
    const root = tempDir('bad-manifest');
    const dir = writeVersion(root, 'scale', '1', scaleModel(1));
    writeFileSync(join(dir, 'model.json'), JSON.stringify({ sha256: 'short', batching: { maxBatchSize: 0 } }));
    const kernel = await startKernel({ modelRepository: root });
    try {
      const info = kernel.inference.get('scale');
      assert.equal(info.state, 'failed');
      assert.match(info.reason!, /not a valid model\.json: \/sha256 must match pattern/);
    } finally {
      await kernel.stop();
      rmSync(root, { recursive: true, force: true });
    }
  });
});
