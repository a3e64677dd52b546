import { strict as assert } from 'node:assert';
import { once } from 'node:events';
import { inferCallback, InferenceEmitter, Nucleus } from '@nucleus/core';
import type { InferResult, NucleusError } from '@nucleus/sdk';
import { join } from 'node:path';
import { REPO_ROOT } from '../helpers/paths.js';

const input = (x: number) => ({
  input: { dtype: 'float32' as const, shape: [1, 4], data: new Float32Array([x, 0.2, 0.3, 0.4]) },
});

describe('the engine as a library, without HTTP', () => {
  let kernel: Nucleus;
  before(async () => {
    kernel = Nucleus.create({
      env: {},
      pluginFolders: [],
      nodeModules: [],
      cli: {
        'plugins.watch': false,
        'logging.level': 'silent',
        'plugins.dirs': [join(REPO_ROOT, 'plugins', 'builtin-models')],
      },
    });
    await kernel.start();
  });
  after(() => kernel.stop());

  it('runs a model with await', async () => {
    const result = await kernel.inference.infer({ model: 'mlp-classifier', inputs: input(0.1) });
    assert.equal(result.model, 'mlp-classifier');
    assert.deepEqual(result.outputs.probabilities!.shape, [1, 3]);
  });

  it('runs a model in callback style, errors included', async () => {
    const expected = await kernel.inference.infer({ model: 'mlp-classifier', inputs: input(0.7) });
    const [err, result] = await new Promise<[NucleusError | null, InferResult | undefined]>((resolve) =>
      inferCallback(kernel.inference, { model: 'mlp-classifier', inputs: input(0.7) }, (e, r) => resolve([e, r])),
    );
    assert.equal(err, null);
    assert.deepEqual(result!.outputs, expected.outputs);
    const failed = await new Promise<NucleusError | null>((resolve) =>
      inferCallback(kernel.inference, { model: 'nope', inputs: input(0) }, (e) => resolve(e)),
    );
    assert.deepEqual([failed?.status, failed?.code], [404, 'model_not_found']);
  });

  it('emits results and failures by tag from an InferenceEmitter', async () => {
    const emitter = new InferenceEmitter<number>(kernel.inference);
    const results: number[] = [];
    const failures: Array<[number, string]> = [];
    emitter.on('result', (tag) => results.push(tag));
    emitter.on('failed', (tag, err) => failures.push([tag, err.code]));
    const idle = once(emitter, 'idle');
    for (let i = 0; i < 8; i++) emitter.submit(i, { model: 'mlp-classifier', inputs: input(i / 8) });
    emitter.submit(99, {
      model: 'mlp-classifier',
      inputs: { input: { dtype: 'float32', shape: [1, 3], data: new Float32Array(3) } },
    });
    await idle;
    assert.deepEqual(
      results.sort((a, b) => a - b),
      [0, 1, 2, 3, 4, 5, 6, 7],
    );
    assert.deepEqual(
      failures.map(([tag]) => tag),
      [99],
    );
    assert.equal(emitter.pending, 0);
  });
});
