import { strict as assert } from 'node:assert';
import { performance } from 'node:perf_hooks';
import type { TestKernel } from '@nucleus/sdk/testing';
import { floats } from '../engine/engine-fixtures.js';
import { ADMIN_KEY, startKServe } from './kserve-fixtures.js';

// Timings here are loose on purpose (2 shared cores, CI noise): they pin the behaviour — the event loop stays
// free while models run — and leave real numbers to the benchmarks.
describe('health while the CNN is hammered', () => {
  let kit: TestKernel;
  before(async () => {
    kit = await startKServe();
  });
  after(() => kit.stop());

  it('answers /health quickly while inference requests keep the model busy', async () => {
    // Encoded once: the client shares this process, and re-encoding 2 MB per request would load the event loop too.
    const body = Buffer.from(JSON.stringify({ inputs: [{ name: 'input', shape: [2, 3, 224, 224], datatype: 'FP32', data: Array.from(floats(2 * 3 * 224 * 224, 9), (v) => Math.round(v * 1000) / 1000) }] }));
    const url = new URL('/v2/models/resnet-tiny/infer', kit.url);
    const headers = { 'content-type': 'application/json', authorization: `Bearer ${ADMIN_KEY}` };
    let stop = false;
    let completed = 0;
    const hammer = async (): Promise<void> => {
      while (!stop) {
        const res = await fetch(url, { method: 'POST', headers, body });
        const text = await res.text();
        assert.equal(res.status, 200, text);
        completed++;
      }
    };
    const clients = Array.from({ length: 4 }, () => hammer());
    const failed = Promise.all(clients).then(
      () => undefined,
      (err: unknown) => err,
    );
    // Let the load build up before measuring (bounded: a failing client ends the wait).
    for (let i = 0; i < 1000 && completed < 4; i++) {
      const err = await Promise.race([failed, new Promise((r) => setTimeout(() => r(undefined), 10))]);
      if (err) throw err;
    }
    assert.ok(completed >= 4, 'the load never started');
    const latencies: number[] = [];
    const busyBefore = kit.kernel.inference.get('resnet-tiny').status!.batches;
    for (let i = 0; i < 40; i++) {
      const started = performance.now();
      const res = await fetch(new URL('/health', kit.url));
      await res.text();
      latencies.push(performance.now() - started);
      assert.equal(res.status, 200);
      await new Promise((r) => setTimeout(r, 10));
    }
    stop = true;
    await Promise.all(clients);
    const batchesDuring = kit.kernel.inference.get('resnet-tiny').status!.batches - busyBefore;
    latencies.sort((a, b) => a - b);
    const p50 = latencies[Math.floor(latencies.length * 0.5)]!;
    const p99 = latencies[Math.floor(latencies.length * 0.99)]!;
    assert.ok(batchesDuring >= 5, `the model ran only ${batchesDuring} batches while /health was polled`);
    assert.ok(p99 < 200, `/health p50 ${p50.toFixed(1)} ms, p99 ${p99.toFixed(1)} ms under load`);
  });
});
