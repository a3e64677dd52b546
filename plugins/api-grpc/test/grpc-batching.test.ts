import { strict as assert } from 'node:assert';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { NucleusEvents } from '@nucleus/sdk';
import { startTestKernel, type TestKernel } from '@nucleus/sdk/testing';
import { inferenceClient, unary, withKey, type InferenceClient } from './grpc-client.js';

const PLUGIN = fileURLToPath(new URL('..', import.meta.url));
const REPO = fileURLToPath(new URL('../../..', import.meta.url));
const ADMIN = 'grpc-admin-key-0123456789';
const ROW = [35, 48000, 0.3, 6, 0, 5, 1, 0.2];

// A gRPC ModelInfer must reach the dynamic batcher as the same request a REST v2 infer is (same tensors, shapes and
// rows), so the two protocols share batches and neither waits longer than the other for its batch to go.
describe('gRPC ModelInfer in the dynamic batcher', function () {
  this.timeout(120_000);
  let kit: TestKernel;
  let client: InferenceClient;
  const batches: Array<NucleusEvents['batch.executed']> = [];
  const ends: Array<NucleusEvents['inference.end']> = [];
  before(async () => {
    kit = await startTestKernel({
      plugins: [PLUGIN, join(REPO, 'plugins/api-kserve')],
      env: { NUCLEUS_ADMIN_KEY: ADMIN },
      // A batch goes only when full (two rows): the delay is longer than the test may run, so no timer sends it.
      config: {
        'plugin.api-grpc.port': 0,
        'batching.maxBatchSize': 2,
        'batching.maxQueueDelayMs': 600_000,
        'queue.timeoutMs': 600_000,
      },
    });
    const where = await kit.request('/admin/grpc', { headers: { authorization: `Bearer ${ADMIN}` } });
    assert.equal(where.status, 200);
    client = inferenceClient((where.body as { port: number }).port);
    kit.kernel.events.on('batch.executed', (e) => batches.push(e));
    kit.kernel.events.on('inference.end', (e) => ends.push(e));
  });
  after(async () => {
    client?.close();
    await kit?.stop();
  });

  it('batches a one-row gRPC request with a one-row REST request, as one full batch', async () => {
    const grpcRow = unary<{ outputs: Array<{ name: string; shape: string[] }> }>(
      client,
      'ModelInfer',
      {
        model_name: 'tabular-classifier',
        inputs: [{ name: 'features', datatype: 'FP32', shape: [1, 8], contents: { fp32_contents: ROW } }],
      },
      withKey(ADMIN),
    );
    const restRow = kit.request('/v2/models/tabular-classifier/infer', {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN}` },
      body: { inputs: [{ name: 'features', datatype: 'FP32', shape: [1, 8], data: ROW }] },
    });
    // Neither answers unless both joined one batch: a request the batcher could not batch with the other would sit
    // in the queue until the delay (longer than the test's timeout).
    const [viaGrpc, viaRest] = await Promise.all([grpcRow, restRow]);
    assert.equal(viaRest.status, 200, JSON.stringify(viaRest.body));
    assert.deepEqual(viaGrpc.outputs.find((o) => o.name === 'label')?.shape, ['1']);
    const tabular = batches.filter((b) => b.model === 'tabular-classifier');
    assert.deepEqual(
      tabular.map((b) => b.size),
      [2],
    );
    assert.deepEqual(
      ends.filter((e) => e.model === 'tabular-classifier').map((e) => [e.ok, e.batchSize]),
      [
        [true, 2],
        [true, 2],
      ],
    );
  });
});
