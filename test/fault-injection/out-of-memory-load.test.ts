import { strict as assert } from 'node:assert';
import { readFileSync, rmSync } from 'node:fs';
import type { Nucleus } from '@nucleus/core';
import type { NucleusError } from '@nucleus/sdk';
import { GraphBuilder } from '@nucleus/sdk/onnx';
import { tempDir } from '../helpers/paths.js';
import { builtinModel, f32, floats, startKernel, writeVersion } from '../engine/engine-fixtures.js';

// A model that needs 64 TiB for any run: a constant the size of its shape initializer is made at run time (ORT does
// not fold a constant that large when the session opens), so its warm-up run really fails to allocate.
function modelNeedingTooMuchMemory(): Uint8Array {
  const g = new GraphBuilder('needs_too_much_memory');
  const x = g.input('x', 'float32', ['batch', 1]);
  const shape = g.initializer('shape', BigInt64Array.from([2n ** 44n]), [1], { dtype: 'int64' });
  const sum = g.node('ReduceSum', [g.node('ConstantOfShape', [shape])], { keepdims: 0 });
  g.output(g.node('Add', [x, sum]), 'float32', ['batch', 1]);
  return g.toModel({ producer: 'nucleus-test' }).encode();
}

describe('fault injection: a model that does not fit in memory', () => {
  let kernel: Nucleus | undefined;
  let root: string | undefined;
  afterEach(async () => {
    await kernel?.stop();
    kernel = undefined;
    if (root) rmSync(root, { recursive: true, force: true });
  });

  it('fails its load with 507 insufficient_memory and what to do, and the server keeps serving the rest', async () => {
    root = tempDir('oom-load');
    writeVersion(root, 'good', '1', readFileSync((await builtinModel('mlp-classifier')).modelPath));
    writeVersion(root, 'huge', '1', modelNeedingTooMuchMemory());
    kernel = await startKernel({ modelRepository: root });
    const huge = kernel.inference.get('huge');
    assert.equal(huge.state, 'failed');
    assert.match(huge.reason ?? '', /ran out of memory in its warm-up run .*Failed to allocate memory|bad_alloc/);
    assert.match(huge.reason ?? '', /smaller or quantized model/);
    assert.ok(kernel.health.report().conditions.some((c) => /huge/.test(c.reason)));

    // Loading it again, explicitly, gives the same definite error.
    await assert.rejects(
      kernel.inference.load('huge'),
      (err: NucleusError) => err.status === 507 && err.code === 'insufficient_memory',
    );

    const input = kernel.inference.get('good').inputs[0]!;
    const width = input.shape[1]!;
    const out = await kernel.inference.infer({
      model: 'good',
      inputs: { [input.name]: f32(floats(width), [1, width]) },
    });
    assert.equal(out.model, 'good');
  });
});
