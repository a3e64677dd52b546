import { strict as assert } from 'node:assert';
import type { Nucleus } from '@nucleus/core';
import type { NucleusError, Tensor } from '@nucleus/sdk';
import { builtinModel, f32, i64, runDirect, startKernel } from './engine-fixtures.js';

describe('inputs checked against the model', () => {
  let kernel: Nucleus;
  let multiIoPath: string;
  before(async () => {
    const mlp = await builtinModel('mlp-classifier');
    const multi = await builtinModel('multi-io');
    multiIoPath = multi.modelPath;
    kernel = await startKernel({
      models: [
        { name: 'mlp', path: mlp.dir },
        { name: 'multi', path: multi.dir },
      ],
    });
  });
  after(() => kernel.stop());

  const refuses = async (
    model: string,
    inputs: Record<string, Tensor>,
    code: string,
    message: RegExp,
    param?: string,
    outputs?: string[],
  ) =>
    assert.rejects(kernel.inference.infer({ model, inputs, ...(outputs && { outputs }) }), (err: NucleusError) => {
      assert.equal(err.status, 400, err.message);
      assert.equal(err.code, code);
      assert.match(err.message, message);
      if (param) assert.equal(err.param, param);
      return true;
    });

  it('names the input and the expected shape when a dimension is wrong', () =>
    refuses(
      'mlp',
      { input: f32([1, 2, 3, 4, 5], [1, 5]) },
      'invalid_shape',
      /input 'input' has shape \[1,5\], but model 'mlp' version '1' expects \[-1,4\].*dimension 1 must be 4/,
      'input',
    ));

  it('names the input when the rank is wrong', () =>
    refuses(
      'mlp',
      { input: f32([1, 2, 3, 4], [4]) },
      'invalid_shape',
      /input 'input' has shape \[4\].*must have 2 dimensions/,
      'input',
    ));

  it('names the input and both dtypes when the dtype is wrong', () =>
    refuses(
      'mlp',
      { input: i64([1, 2, 3, 4], [1, 4]) },
      'invalid_datatype',
      /input 'input' is int64, but model 'mlp' version '1' expects float32/,
      'input',
    ));

  it('names an unknown input and lists the real ones', () =>
    refuses(
      'mlp',
      { input: f32([1, 2, 3, 4], [1, 4]), extra: f32([1], [1]) },
      'unknown_input',
      /no input named 'extra'; its inputs are input \(float32 \[-1,4\]\)/,
      'extra',
    ));

  it('names a missing input', () =>
    refuses(
      'multi',
      { features: f32(new Array(6).fill(0), [1, 6]) },
      'missing_input',
      /input 'category' is missing/,
      'category',
    ));

  it('refuses data that does not fill the shape', () =>
    refuses(
      'mlp',
      { input: { dtype: 'float32', shape: [2, 4], data: new Float32Array(7) } },
      'invalid_tensor_data',
      /shape \[2,4\], which holds 8 values, but 7/,
      'input',
    ));

  it('refuses inputs that disagree on the batch size', () =>
    refuses(
      'multi',
      { features: f32(new Array(12).fill(0), [2, 6]), category: i64([1], [1]) },
      'invalid_shape',
      /disagree on dimension 'batch' \(2 vs 1\)/,
      'category',
    ));

  it('refuses an unknown output name', () =>
    refuses(
      'mlp',
      { input: f32([1, 2, 3, 4], [1, 4]) },
      'unknown_output',
      /no output named 'logits'; its outputs are probabilities/,
      'logits',
      ['logits'],
    ));

  it('runs two inputs of different dtypes and returns only the outputs asked for', async () => {
    const inputs = {
      features: f32([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 1, 2, 3, 4, 5, 6], [2, 6]),
      category: i64([3, 0], [2]),
    };
    const r = await kernel.inference.infer({ model: 'multi', inputs, outputs: ['bucket'] });
    assert.deepEqual(Object.keys(r.outputs), ['bucket']);
    const direct = await runDirect(multiIoPath, inputs);
    assert.deepEqual(r.outputs.bucket, direct.bucket);
  });
});
