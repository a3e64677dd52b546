import { strict as assert } from 'node:assert';
import { join } from 'node:path';
import type { Nucleus } from '@nucleus/core';
import type { NucleusError } from '@nucleus/sdk';
import { startTestKernel } from '@nucleus/sdk/testing';
import { REPO_ROOT } from '../helpers/paths.js';
import { builtinModel, i64, startKernel, within } from '../engine/engine-fixtures.js';

const API_PLUGIN = join(REPO_ROOT, 'plugins', 'api-openai');

describe('fault injection: a worker dies mid-request', () => {
  let kernel: Nucleus | undefined;
  afterEach(async () => {
    await kernel?.stop();
    kernel = undefined;
  });

  it('tensor: with two replicas, every request pending on the killed one is re-run on the other and succeeds', async () => {
    const bert = await builtinModel('bert-tiny');
    kernel = await startKernel({
      models: [{ name: 'bert', path: bert.modelPath }],
      'workers.perModel': 2,
      'batching.maxBatchSize': 4,
    });
    const model = kernel.inference.loadedModel('bert');
    const long = () => ({
      input_ids: i64(new Array(128).fill(5), [1, 128]),
      attention_mask: i64(new Array(128).fill(1), [1, 128]),
    });
    const pending = Array.from({ length: 40 }, () => kernel!.inference.infer({ model: 'bert', inputs: long() }));
    await new Promise((r) => setTimeout(r, 5));
    const victim = model.pool.workers.find((w) => w.pending > 0) ?? model.pool.workers[0]!;
    await victim.kill();
    const settled = await within(Promise.allSettled(pending), 30_000, 'requests to the killed replica');
    const failed = settled
      .filter((s): s is PromiseRejectedResult => s.status === 'rejected')
      .map((s) => (s.reason as NucleusError).message);
    assert.deepEqual(failed, [], 'no request fails: the batch is retried on the healthy replica');
    for (const s of settled)
      assert.deepEqual(
        (s as PromiseFulfilledResult<{ outputs: Record<string, { shape: number[] }> }>).value.outputs.last_hidden_state!
          .shape,
        [1, 128, 32],
      );
    assert.equal(kernel.inference.get('bert').status!.workerRestarts, 1);
  });

  it('tensor: with one replica, pending requests get a definite 503 worker_exited, none hangs', async () => {
    const bert = await builtinModel('bert-tiny');
    kernel = await startKernel({ models: [{ name: 'bert', path: bert.modelPath }], 'workers.perModel': 1 });
    const model = kernel.inference.loadedModel('bert');
    const long = () => ({
      input_ids: i64(new Array(128).fill(5), [1, 128]),
      attention_mask: i64(new Array(128).fill(1), [1, 128]),
    });
    const pending = Array.from({ length: 20 }, () => kernel!.inference.infer({ model: 'bert', inputs: long() }));
    await new Promise((r) => setTimeout(r, 5));
    await model.pool.workers[0]!.kill();
    const settled = await within(Promise.allSettled(pending), 30_000, 'requests to the killed worker');
    for (const s of settled) if (s.status === 'rejected') assert.equal((s.reason as NucleusError).status, 503);
    const next = await within(kernel.inference.infer({ model: 'bert', inputs: long() }), 10_000, 'the next request');
    assert.deepEqual(next.outputs.last_hidden_state!.shape, [1, 128, 32]);
  });

  it('LLM: every request running on a killed generation worker ends with an error or 200 over HTTP, none hangs, and the next one succeeds', async () => {
    const kit = await startTestKernel({ plugins: [API_PLUGIN], config: { 'scheduler.batchWindowMs': 5 } });
    try {
      const post = (stream: boolean, onFirstChunk?: () => void) =>
        fetch(new URL('/v1/completions', kit.url), {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ model: 'tiny-llama', prompt: 'Once', max_tokens: 240, ignore_eos: true, stream }),
          signal: AbortSignal.timeout(60_000),
        }).then(async (res) => {
          let text = '';
          const decoder = new TextDecoder();
          for await (const chunk of res.body!) {
            text += decoder.decode(chunk as Uint8Array, { stream: true });
            if (text.includes('"text"')) onFirstChunk?.();
          }
          return { status: res.status, text };
        });
      assert.equal((await post(false)).status, 200);
      let streaming!: () => void;
      const started = new Promise<void>((resolve) => (streaming = resolve));
      const requests = [post(false), post(false), post(true, () => streaming()), post(true)];
      await started;
      await kit.kernel.generation.killWorker('tiny-llama');
      const results = await within(Promise.all(requests), 30_000, 'requests on the killed worker');
      // Whatever was not finished before the kill ends with worker_exited: as a 503 before the body, or as an SSE
      // error event once a stream had sent its 200; never a silent end.
      for (const r of results) {
        if (r.status === 503) assert.equal(JSON.parse(r.text).error.code, 'worker_exited');
        else {
          assert.equal(r.status, 200);
          assert.ok(/worker_exited/.test(r.text) || /"finish_reason":"length"/.test(r.text), r.text.slice(-300));
        }
      }
      assert.ok(
        results.some((r) => /worker_exited/.test(r.text)),
        'the kill hit at least one running request',
      );
      assert.equal((await post(false)).status, 200);
      assert.deepEqual(kit.kernel.generation.admission, { running: 0, waiting: 0, shedding: false });
    } finally {
      await kit.stop();
    }
  });
});
