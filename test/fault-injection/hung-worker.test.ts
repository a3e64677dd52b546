import { strict as assert } from 'node:assert';
import type { Nucleus } from '@nucleus/core';
import type { NucleusError, NucleusEvents } from '@nucleus/sdk';
import { builtinModel, f32, floats, startKernel, within } from '../engine/engine-fixtures.js';

describe('fault injection: a worker hangs mid-run', () => {
  let kernel: Nucleus | undefined;
  afterEach(async () => {
    await kernel?.stop();
    kernel = undefined;
  });

  const request = (k: Nucleus) => {
    const input = k.inference.get('mlp').inputs[0]!;
    const width = input.shape[1]!;
    return k.inference.infer({ model: 'mlp', inputs: { [input.name]: f32(floats(width), [1, width]) } });
  };

  it('with one replica, runs on the hung worker get a definite 503 worker_hung after workers.runTimeoutMs, and a fresh worker serves what follows', async () => {
    const mlp = await builtinModel('mlp-classifier');
    kernel = await startKernel({
      models: [{ name: 'mlp', path: mlp.modelPath }],
      'workers.runTimeoutMs': 300,
      'breaker.failureThreshold': 100,
    });
    const k = kernel;
    const health: NucleusEvents['worker.health'][] = [];
    k.events.on('worker.health', (e) => health.push(e));
    const worker = k.inference.loadedModel('mlp').pool.workers[0]!;
    worker.testOnlyBlock(5000);
    const settled = await within(
      Promise.allSettled([request(k), request(k), request(k)]),
      10_000,
      'requests on the hung worker',
    );
    // A 503 (not an answer after the 5 s block) shows the run timeout answered. Requests the scheduler had not yet
    // sent to the hung worker when it was replaced may be served by the fresh one; none may fail otherwise.
    const rejected = settled.filter((s): s is PromiseRejectedResult => s.status === 'rejected');
    assert.ok(rejected.length >= 1, 'the run on the hung worker failed');
    for (const s of rejected) {
      assert.equal((s.reason as NucleusError).status, 503);
      assert.equal((s.reason as NucleusError).code, 'worker_hung');
    }
    const next = await within(request(k), 10_000, 'the request after the hang');
    assert.equal(next.model, 'mlp');
    assert.deepEqual(
      health.map((h) => h.healthy),
      [false, true],
    );
    assert.match(health[0]!.reason ?? '', /hung/);
    assert.equal(k.inference.get('mlp').status!.workerRestarts, 1);
  });

  it('with two replicas, a run on the hung replica is retried on the healthy one and succeeds', async () => {
    const mlp = await builtinModel('mlp-classifier');
    kernel = await startKernel({
      models: [{ name: 'mlp', path: mlp.modelPath }],
      'workers.perModel': 2,
      'workers.runTimeoutMs': 300,
    });
    const k = kernel;
    const workers = k.inference.loadedModel('mlp').pool.workers;
    workers[0]!.testOnlyBlock(5000);
    const settled = await within(
      Promise.allSettled(Array.from({ length: 10 }, () => request(k))),
      10_000,
      'requests with one hung replica',
    );
    const failed = settled
      .filter((s): s is PromiseRejectedResult => s.status === 'rejected')
      .map((s) => (s.reason as Error).message);
    assert.deepEqual(failed, []);
    assert.equal(k.inference.get('mlp').status!.workerRestarts, 1, 'the hung replica was replaced');
  });
});
