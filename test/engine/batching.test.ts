import { strict as assert } from 'node:assert';
import type { Nucleus } from '@nucleus/core';
import { BatchAssembler } from '@nucleus/core/internal/engine/index';
import type { NucleusError, NucleusEvents, Tensor, TensorMetadata } from '@nucleus/sdk';
import { readFileSync } from 'node:fs';
import { tempDir } from '../helpers/paths.js';
import { builtinModel, f32, floats, i64, runDirect, startKernel, within, writeVersion } from './engine-fixtures.js';

function meta(name: string, dtype: TensorMetadata['dtype'], dims: Array<number | string>): TensorMetadata {
  return {
    name,
    dtype,
    shape: dims.map((d) => (typeof d === 'number' ? d : -1)),
    dimNames: dims.map((d) => (typeof d === 'string' ? d : null)),
  };
}

describe('batch assembly', () => {
  it('stacks requests along the batch dimension and splits outputs back exactly', () => {
    const a = new BatchAssembler([meta('x', 'float32', ['batch', 3])], [meta('y', 'float32', ['batch', 3])], false);
    const items = [f32([1, 2, 3], [1, 3]), f32([4, 5, 6, 7, 8, 9], [2, 3]), f32([10, 11, 12], [1, 3])].map((x) => ({
      x,
    }));
    const { inputs, layout, stats } = a.assemble(items);
    assert.deepEqual(inputs.x!.shape, [4, 3]);
    assert.deepEqual(Array.from(inputs.x!.data as Float32Array), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
    assert.equal(stats.paddingOverhead, 0);
    const parts = a.split({ y: inputs.x! }, layout);
    assert.deepEqual(
      parts.map((p) => [p.y!.shape, Array.from(p.y!.data as Float32Array)]),
      items.map((i) => [i.x.shape, Array.from(i.x.data as Float32Array)]),
    );
  });

  it('pads ragged requests with zeros and cuts outputs back along the named length dimension', () => {
    const a = new BatchAssembler(
      [meta('input_ids', 'int64', ['batch', 'sequence']), meta('attention_mask', 'int64', ['batch', 'sequence'])],
      [meta('hidden', 'float32', ['batch', 'sequence', 2])],
      true,
    );
    const short = { input_ids: i64([7, 8], [1, 2]), attention_mask: i64([1, 1], [1, 2]) };
    const long = { input_ids: i64([1, 2, 3, 4], [1, 4]), attention_mask: i64([1, 1, 1, 1], [1, 4]) };
    assert.ok(a.canJoin(short, long));
    const { inputs, layout, stats } = a.assemble([short, long]);
    assert.deepEqual(inputs.input_ids!.shape, [2, 4]);
    assert.deepEqual(Array.from(inputs.input_ids!.data as BigInt64Array, Number), [7, 8, 0, 0, 1, 2, 3, 4]);
    assert.deepEqual(Array.from(inputs.attention_mask!.data as BigInt64Array, Number), [1, 1, 0, 0, 1, 1, 1, 1]);
    assert.equal(stats.paddingOverhead, 0.25);
    assert.equal(stats.averageLength, 3);
    const hidden: Tensor = f32(
      Array.from({ length: 16 }, (_, i) => i),
      [2, 4, 2],
    );
    const [s, l] = a.split({ hidden }, layout);
    assert.deepEqual(s!.hidden!.shape, [1, 2, 2]);
    assert.deepEqual(Array.from(s!.hidden!.data as Float32Array), [0, 1, 2, 3]);
    assert.deepEqual(l!.hidden!.shape, [1, 4, 2]);
    assert.deepEqual(Array.from(l!.hidden!.data as Float32Array), [8, 9, 10, 11, 12, 13, 14, 15]);
  });

  it('assembles in slices, letting other work run between them, into exactly what one pass builds', async () => {
    const a = new BatchAssembler([meta('x', 'float32', ['batch', 1000]), meta('n', 'int64', ['batch'])], [], false);
    const items = Array.from({ length: 6 }, (_, i) => ({ x: f32(floats(1000, i + 1), [1, 1000]), n: i64([i], [1]) }));
    let ran = 0;
    let stop = false;
    const other = (): void => {
      ran++;
      if (!stop) setImmediate(other);
    };
    setImmediate(other);
    const sliced = await a.assembleInSlices(items, 8000).finally(() => (stop = true));
    // 4000 bytes a request: the loop gets a turn after every two requests' `x`, three turns in all.
    assert.ok(ran >= 3, `other work ran ${ran} times during the assembly`);
    assert.deepEqual(sliced, a.assemble(items));
    assert.deepEqual(Array.from(sliced.inputs.n!.data as BigInt64Array), [0n, 1n, 2n, 3n, 4n, 5n]);
  });

  it('keeps ragged requests apart when padding is off', () => {
    const a = new BatchAssembler([meta('x', 'float32', ['batch', 'n'])], [meta('y', 'float32', ['batch'])], false);
    assert.equal(a.canJoin({ x: f32([1, 2], [1, 2]) }, { x: f32([1, 2, 3], [1, 3]) }), false);
    assert.equal(a.canJoin({ x: f32([1, 2], [1, 2]) }, { x: f32([3, 4], [1, 2]) }), true);
  });
});

describe('dynamic batching on real models', () => {
  let kernel: Nucleus;
  let mlpPath: string;
  let bertPath: string;
  const batches: Array<NucleusEvents['batch.executed']> = [];
  const logLines: string[] = [];

  before(async () => {
    mlpPath = (await builtinModel('mlp-classifier')).modelPath;
    bertPath = (await builtinModel('bert-tiny')).modelPath;
    // model.json asks for batches of 3; the config entry of one of the two models says 4 instead.
    const prefDir = writeVersion(tempDir('preferred'), 'pref', '1', readFileSync(mlpPath), {
      batching: { preferredBatchSizes: [3] },
    });
    kernel = await startKernel(
      {
        models: [
          { name: 'mlp', path: mlpPath, maxQueueDelayMs: 50 },
          { name: 'mlp-solo', path: mlpPath, batching: false },
          { name: 'bert', path: bertPath, maxQueueDelayMs: 50 },
          { name: 'slow-mlp', path: mlpPath, maxQueueDelayMs: 300 },
          { name: 'pref-manifest', path: prefDir, maxQueueDelayMs: 60_000 },
          { name: 'pref-config', path: prefDir, maxQueueDelayMs: 60_000, preferredBatchSizes: [4] },
        ],
      },
      { before: (k) => k.events.on('batch.executed', (e) => batches.push(e)), logLines },
    );
  });
  after(() => kernel.stop());

  const ofModel = (model: string) => batches.filter((b) => b.model === model);

  it('runs 16 concurrent requests in fewer batches, each answer equal to its solo answer exactly', async () => {
    const rows = Array.from({ length: 16 }, (_, i) => floats(4, 100 + i));
    const before = ofModel('mlp').length;
    const results = await Promise.all(
      rows.map((r) => kernel.inference.infer({ model: 'mlp', inputs: { input: f32(r, [1, 4]) } })),
    );
    const ran = ofModel('mlp').slice(before);
    assert.ok(ran.length < 16, `16 requests ran in ${ran.length} batches`);
    assert.equal(
      ran.reduce((n, b) => n + b.size, 0),
      16,
    );
    assert.ok(ran.some((b) => b.size > 1));
    for (const [i, r] of rows.entries()) {
      const solo = await kernel.inference.infer({ model: 'mlp-solo', inputs: { input: f32(r, [1, 4]) } });
      const direct = await runDirect(mlpPath, { input: f32(r, [1, 4]) });
      for (const name of ['probabilities', 'label']) {
        assert.deepEqual(results[i]!.outputs[name], solo.outputs[name], `request ${i} output ${name} batched vs solo`);
        assert.deepEqual(
          Array.from(results[i]!.outputs[name]!.data as Float32Array),
          Array.from(direct[name]!.data as Float32Array),
        );
      }
    }
    assert.equal(
      ofModel('mlp-solo').every((b) => b.size === 1),
      true,
      'batching: false runs requests one by one',
    );
  });

  it('applies a runtime change of batching.maxBatchSize to the next batches', async () => {
    kernel.config.patch({ 'batching.maxBatchSize': 3 }, 'test');
    try {
      assert.equal(kernel.inference.get('mlp').batching!.maxBatchSize, 3);
      const before = ofModel('mlp').length;
      await Promise.all(
        Array.from({ length: 9 }, (_, i) =>
          kernel.inference.infer({ model: 'mlp', inputs: { input: f32([i, 0, 0, 1], [1, 4]) } }),
        ),
      );
      assert.deepEqual(
        ofModel('mlp')
          .slice(before)
          .map((b) => b.size),
        [3, 3, 3],
      );
    } finally {
      kernel.config.patch({ 'batching.maxBatchSize': 32 }, 'test');
    }
  });

  it('takes preferred batch sizes from the model entry over model.json, and sends such a batch without the delay', async () => {
    assert.deepEqual(kernel.inference.get('pref-manifest').batching!.preferredBatchSizes, [3]);
    assert.deepEqual(kernel.inference.get('pref-config').batching!.preferredBatchSizes, [4]);
    const send = (model: string, n: number) =>
      within(
        Promise.all(
          Array.from({ length: n }, (_, i) =>
            kernel.inference.infer({ model, inputs: { input: f32([i, 1, 0, 0], [1, 4]) } }),
          ),
        ),
        20_000,
        `${n} requests to ${model}`,
      );
    // Both wait 60 s for a partial batch: only a preferred size lets them go.
    await send('pref-config', 4);
    assert.deepEqual(
      ofModel('pref-config').map((b) => b.size),
      [4],
    );
    await send('pref-manifest', 3);
    assert.deepEqual(
      ofModel('pref-manifest').map((b) => b.size),
      [3],
    );
  });

  it('pads ragged encoder requests into one batch and gives the same embeddings as unpadded runs', async () => {
    const lengths = [3, 9, 5, 12, 1, 7];
    const requests = lengths.map((n, k) => ({
      input_ids: i64(
        Array.from({ length: n }, (_, j) => (k * 37 + j * 11) % 1024),
        [1, n],
      ),
      attention_mask: i64(new Array(n).fill(1), [1, n]),
    }));
    const before = ofModel('bert').length;
    const results = await Promise.all(requests.map((inputs) => kernel.inference.infer({ model: 'bert', inputs })));
    const ran = ofModel('bert').slice(before);
    assert.ok(ran.length < lengths.length, `${lengths.length} requests ran in ${ran.length} batches`);
    assert.ok(
      ran.some((b) => b.paddingRatio > 0),
      'some batch carried padding',
    );
    for (const [k, inputs] of requests.entries()) {
      const out = results[k]!.outputs.last_hidden_state!;
      assert.deepEqual(out.shape, [1, lengths[k], 32]);
      const direct = (await runDirect(bertPath, inputs)).last_hidden_state!;
      const a = out.data as Float32Array;
      const b = direct.data as Float32Array;
      assert.equal(a.length, b.length);
      let worst = 0;
      for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i]! - b[i]!));
      assert.ok(worst <= 1e-5, `request ${k} (length ${lengths[k]}) differs by ${worst}`);
    }
    const logged = logLines
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .filter((l) => l.msg === 'batch' && l.model === 'bert' && l.version === '1');
    assert.ok(
      logged.some(
        (l) => typeof l.averageLength === 'number' && (l.paddingOverhead as number) > 0 && (l.size as number) > 1,
      ),
      'batches are logged at debug with size, average length and padding',
    );
  });

  it('fails only the bad request of a batch: the others are run again alone', async () => {
    const good = { input_ids: i64([1, 2, 3], [1, 3]), attention_mask: i64([1, 1, 1], [1, 3]) };
    // Longer than the 128 positions the encoder has: ORT refuses the whole batch it is in.
    const bad = {
      input_ids: i64(new Array(200).fill(1), [1, 200]),
      attention_mask: i64(new Array(200).fill(1), [1, 200]),
    };
    // Sent together, so they share a batch (padding on, 50 ms delay).
    const [ok, failed] = await Promise.allSettled([
      kernel.inference.infer({ model: 'bert', inputs: good }),
      kernel.inference.infer({ model: 'bert', inputs: bad }),
    ]);
    assert.equal(ok.status, 'fulfilled');
    assert.deepEqual(
      (ok as PromiseFulfilledResult<{ outputs: Record<string, Tensor> }>).value.outputs.last_hidden_state!.shape,
      [1, 3, 32],
    );
    assert.equal(failed.status, 'rejected');
    const err = (failed as PromiseRejectedResult).reason as NucleusError;
    assert.equal(err.code, 'inference_failed');
    assert.match(err.message, /model 'bert' version '1'|bert@1/);
  });

  it('takes an aborted request out of its batch before dispatch', async () => {
    const before = ofModel('slow-mlp').length;
    const controller = new AbortController();
    const kept = kernel.inference.infer({ model: 'slow-mlp', inputs: { input: f32([1, 2, 3, 4], [1, 4]) } });
    const aborted = kernel.inference.infer({
      model: 'slow-mlp',
      inputs: { input: f32([5, 6, 7, 8], [1, 4]) },
      signal: controller.signal,
    });
    setTimeout(() => controller.abort(), 20);
    await assert.rejects(
      within(aborted, 5000, 'the aborted request'),
      (err: NucleusError) => err.code === 'request_cancelled',
    );
    await within(kept, 5000, 'the request that stayed');
    const ran = ofModel('slow-mlp').slice(before);
    assert.deepEqual(
      ran.map((b) => b.size),
      [1],
    );
  });

  it('rejects the pending requests of a killed worker instead of hanging, and serves the next one', async () => {
    const model = kernel.inference.loadedModel('bert');
    const long = {
      input_ids: i64(new Array(128).fill(5), [1, 128]),
      attention_mask: i64(new Array(128).fill(1), [1, 128]),
    };
    const pending = Array.from({ length: 40 }, () => kernel.inference.infer({ model: 'bert', inputs: long }));
    await new Promise((r) => setTimeout(r, 5));
    await model.pool.workers[0]!.kill();
    const settled = await within(Promise.allSettled(pending), 10_000, 'requests to the killed worker');
    const failed = settled.filter((s): s is PromiseRejectedResult => s.status === 'rejected');
    assert.ok(failed.length > 0, 'some requests were still pending when the worker died');
    for (const f of failed) assert.equal((f.reason as NucleusError).code, 'worker_exited');
    const next = await within(kernel.inference.infer({ model: 'bert', inputs: long }), 10_000, 'the next request');
    assert.deepEqual(next.outputs.last_hidden_state!.shape, [1, 128, 32]);
    assert.equal(kernel.inference.get('bert').status!.workerRestarts, 1);
  });
});
