import { strict as assert } from 'node:assert';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { NucleusEvents } from '@nucleus/sdk';
import { GraphBuilder } from '@nucleus/sdk/onnx';
import { startTestKernel, type TestKernel } from '@nucleus/sdk/testing';
import { REPO_ROOT, tempDir } from '../helpers/paths.js';
import { scaleModel } from '../engine/engine-fixtures.js';

// `row = table[idx]`: an index past the table fails inside the run, a server-side failure that opens the breaker.
function lookupModel(offset: number): Uint8Array {
  const g = new GraphBuilder('lookup');
  const idx = g.input('idx', 'int64', [1]);
  const table = g.initializer(
    'table',
    Float32Array.from([0, 1, 10, 11, 20, 21, 30, 31].map((v) => v + offset)),
    [4, 2],
  );
  const row = g.ops.gather(table, idx, 0, { outputs: ['row'] });
  g.output(row, 'float32', [1, 2]);
  return g.toModel({ producer: 'nucleus-test' }).encode();
}

describe('fault injection: fallback model', () => {
  let kit: TestKernel | undefined;
  let root: string | undefined;
  afterEach(async () => {
    await kit?.stop();
    kit = undefined;
    if (root) rmSync(root, { recursive: true, force: true });
  });

  const body = (i: number) => ({ inputs: [{ name: 'idx', shape: [1], datatype: 'INT64', data: [i] }] });

  it('serves a model whose breaker is open with its fallback when the inputs match, and says which model answered', async () => {
    root = tempDir('fallback');
    for (const [name, bytes] of [
      ['primary', lookupModel(0)],
      ['backup', lookupModel(100)],
      ['other', scaleModel(2)],
    ] as const)
      writeFileSync(join(root, `${name}.onnx`), bytes);
    kit = await startTestKernel({
      plugins: [join(REPO_ROOT, 'plugins/api-kserve')],
      builtinModels: false,
      config: {
        models: [
          { name: 'primary', path: join(root, 'primary.onnx'), fallback: 'backup' },
          { name: 'backup', path: join(root, 'backup.onnx') },
          { name: 'mismatched', path: join(root, 'primary.onnx'), fallback: 'other' },
          { name: 'other', path: join(root, 'other.onnx') },
        ],
        'breaker.failureThreshold': 2,
        'breaker.cooldownMs': 60_000,
      },
    });
    const k = kit;
    const events: NucleusEvents['model.fallback'][] = [];
    k.kernel.events.on('model.fallback', (e) => events.push(e));
    const infer = (model: string, i: number) => k.request(`/v2/models/${model}/infer`, { body: body(i) });

    const plain = await infer('primary', 1);
    assert.equal(plain.status, 200);
    assert.equal((plain.body as { model_name: string }).model_name, 'primary');
    for (let i = 0; i < 2; i++)
      assert.equal((await infer('primary', 99)).status, 500, 'a failed run is not sent to the fallback');
    assert.equal(k.kernel.inference.get('primary').status!.breaker!.state, 'open');

    const served = await infer('primary', 1);
    assert.equal(served.status, 200, JSON.stringify(served.body));
    const answer = served.body as { model_name: string; outputs: Array<{ data: number[] }> };
    assert.equal(answer.model_name, 'backup');
    assert.deepEqual(answer.outputs[0]!.data, [110, 111]);
    assert.deepEqual(
      events.map((e) => [e.model, e.fallback]),
      [['primary', 'backup']],
    );
    assert.match(events[0]!.reason, /^circuit_open: /);

    // A fallback with other inputs cannot answer: the client sees the breaker's 503 as before.
    for (let i = 0; i < 2; i++) assert.equal((await infer('mismatched', 99)).status, 500);
    const refused = await infer('mismatched', 1);
    assert.equal(refused.status, 503);
    assert.match(JSON.stringify(refused.body), /circuit_open|failing/);
  });
});
