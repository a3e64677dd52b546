import { strict as assert } from 'node:assert';
import type { TestKernel } from '@nucleus/sdk/testing';
import { floats } from '../engine/engine-fixtures.js';
import { ADMIN_KEY, healthUnderLoad, startKServe } from './kserve-fixtures.js';

// Timings here are loose on purpose (2 shared cores, CI noise): they pin the behaviour — the event loop stays
// free while models run — and leave real numbers to the benchmarks.
describe('health while the CNN is hammered', () => {
  let kit: TestKernel;
  before(async () => {
    kit = await startKServe();
  });
  after(() => kit.stop());

  it('answers /health quickly while inference requests keep the model busy', async () => {
    // Encoded once: re-encoding 2 MB per request would only load the client.
    const body = Buffer.from(
      JSON.stringify({
        inputs: [
          {
            name: 'input',
            shape: [2, 3, 224, 224],
            datatype: 'FP32',
            data: Array.from(floats(2 * 3 * 224 * 224, 9), (v) => Math.round(v * 1000) / 1000),
          },
        ],
      }),
    );
    const url = new URL('/v2/models/resnet-tiny/infer', kit.url);
    const headers = { 'content-type': 'application/json', authorization: `Bearer ${ADMIN_KEY}` };
    let busyBefore = 0;
    const onLoaded = () => (busyBefore = kit.kernel.inference.get('resnet-tiny').status!.batches);
    const { p50, p99 } = await healthUnderLoad({ base: kit.url, url, headers, body, clients: 4, probes: 40, onLoaded });
    const batchesDuring = kit.kernel.inference.get('resnet-tiny').status!.batches - busyBefore;
    assert.ok(batchesDuring >= 5, `the model ran only ${batchesDuring} batches while /health was polled`);
    assert.ok(p99 < 200, `/health p50 ${p50.toFixed(1)} ms, p99 ${p99.toFixed(1)} ms under load`);
  });
});
