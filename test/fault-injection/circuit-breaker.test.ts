import { strict as assert } from 'node:assert';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Nucleus } from '@nucleus/core';
import type { NucleusError, NucleusEvents } from '@nucleus/sdk';
import { GraphBuilder } from '@nucleus/sdk/onnx';
import { tempDir } from '../helpers/paths.js';
import { i64, startKernel } from '../engine/engine-fixtures.js';

// `row = table[idx]` over a 4-row table: an index past the table makes ORT's Gather fail inside the run, a real
// server-side failure that the request's shape cannot catch.
function lookupModel(): Uint8Array {
  const g = new GraphBuilder('lookup');
  const idx = g.input('idx', 'int64', [1]);
  const table = g.initializer('table', Float32Array.from([0, 1, 10, 11, 20, 21, 30, 31]), [4, 2]);
  const row = g.ops.gather(table, idx, 0, { outputs: ['row'] });
  g.output(row, 'float32', [1, 2]);
  return g.toModel({ producer: 'nucleus-test' }).encode();
}

describe('fault injection: per-model circuit breaker', () => {
  let kernel: Nucleus | undefined;
  let root: string | undefined;
  afterEach(async () => {
    await kernel?.stop();
    kernel = undefined;
    if (root) rmSync(root, { recursive: true, force: true });
  });

  it('opens after N server-side failures (not 400s), fails fast with 503 circuit_open and Retry-After, then a successful trial closes it', async () => {
    root = tempDir('breaker');
    const path = join(root, 'lookup.onnx');
    writeFileSync(path, lookupModel());
    kernel = await startKernel({
      models: [{ name: 'lookup', path }],
      'breaker.failureThreshold': 3,
      'breaker.cooldownMs': 400,
    });
    const events: NucleusEvents['breaker.state'][] = [];
    kernel.events.on('breaker.state', (e) => events.push(e));
    const k = kernel;
    const infer = (i: number) => k.inference.infer({ model: 'lookup', inputs: { idx: i64([i], [1]) } });
    const breaker = () => k.inference.get('lookup').status!.breaker!;

    assert.deepEqual([...(await infer(2)).outputs.row!.data], [20, 21]);
    for (let i = 0; i < 5; i++) {
      await assert.rejects(
        k.inference.infer({ model: 'lookup', inputs: { idx: i64([1, 2], [2]) } }),
        (err: NucleusError) => err.status === 400,
      );
    }
    assert.equal(breaker().state, 'closed', 'client errors do not count');
    for (let i = 0; i < 3; i++)
      await assert.rejects(infer(99), (err: NucleusError) => err.status === 500 && err.code === 'inference_failed');
    assert.equal(breaker().state, 'open');
    await assert.rejects(infer(1), (err: NucleusError) => {
      assert.equal(err.status, 503);
      assert.equal(err.code, 'circuit_open');
      assert.ok(Number(err.headers['retry-after']) >= 1);
      return true;
    });
    const health = k.health.report();
    assert.equal(health.status, 'unavailable');
    assert.ok(
      health.conditions.some((c) => c.key === 'breaker:lookup@1' && /circuit breaker open/.test(c.reason)),
      JSON.stringify(health),
    );
    assert.deepEqual(
      events.map((e) => [e.model, e.version, e.state]),
      [['lookup', '1', 'open']],
    );

    // After the cool-down one trial goes through; it fails, so the breaker opens again for another cool-down.
    await new Promise((r) => setTimeout(r, 450));
    assert.equal(breaker().state, 'half-open');
    await assert.rejects(infer(99), (err: NucleusError) => err.code === 'inference_failed');
    await assert.rejects(infer(1), (err: NucleusError) => err.code === 'circuit_open');
    // The next trial succeeds and closes it; /ready is ready again.
    await new Promise((r) => setTimeout(r, 450));
    assert.deepEqual([...(await infer(3)).outputs.row!.data], [30, 31]);
    assert.equal(breaker().state, 'closed');
    assert.equal(k.health.report().status, 'ready');
    assert.deepEqual(
      events.map((e) => e.state),
      ['open', 'half-open', 'open', 'half-open', 'closed'],
    );
  });

  it('counts worker crashes: a model whose worker keeps dying gets circuit_open', async () => {
    root = tempDir('breaker-crash');
    const path = join(root, 'lookup.onnx');
    writeFileSync(path, lookupModel());
    kernel = await startKernel({
      models: [{ name: 'lookup', path }],
      'breaker.failureThreshold': 2,
      'breaker.cooldownMs': 60_000,
    });
    const k = kernel;
    const model = k.inference.loadedModel('lookup');
    for (let i = 0; i < 2; i++) {
      // Block the thread so the request is still pending when the worker is killed.
      model.pool.workers[0]!.testOnlyBlock(300);
      const pending = k.inference.infer({ model: 'lookup', inputs: { idx: i64([1], [1]) } });
      await new Promise((r) => setTimeout(r, 50));
      await model.pool.workers[0]!.kill();
      await assert.rejects(pending, (err: NucleusError) => err.status === 503 && err.code === 'worker_exited');
      await model.pool.workers[0]!.start();
    }
    await assert.rejects(
      k.inference.infer({ model: 'lookup', inputs: { idx: i64([1], [1]) } }),
      (err: NucleusError) => err.code === 'circuit_open',
    );
  });
});
