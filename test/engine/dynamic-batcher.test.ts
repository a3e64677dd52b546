import { strict as assert } from 'node:assert';
import type { BatchSettings } from '@nucleus/core/internal/engine/index';
import type { NucleusError, Tensor } from '@nucleus/sdk';
import { mainThreadBatcher, row } from '../helpers/main-thread-batcher.js';

// The batching policy on its own: the "model" here doubles its input on the main thread, so the test sees exactly
// which requests went together. The real-model behaviour is pinned in batching.test.ts.
function batcher(settings: Partial<BatchSettings>, gate?: Promise<void>) {
  const sizes: number[] = [];
  const { b, submit } = mainThreadBatcher('double', settings, async (x) => {
    await gate;
    sizes.push(x.shape[0]!);
    return { x: { ...x, data: (x.data as Float32Array).map((v) => v * 2) } };
  });
  return { b, sizes, submit };
}

describe('dynamic batcher policy', () => {
  it('runs a queued interactive request before low-priority ones (batch jobs) that came earlier', async () => {
    let open!: () => void;
    const gate = new Promise<void>((r) => (open = r));
    const { b, sizes } = batcher({ maxBatchSize: 2, maxQueueDelayMs: 0 }, gate);
    const rows = (n: number, v: number) => ({
      x: { dtype: 'float32', shape: [n, 1], data: new Float32Array(n).fill(v) } as Tensor,
    });
    const order: number[] = [];
    const low = [1, 2, 3].map((v) => b.submit(rows(2, v), 2, { low: true }).then(() => order.push(v)));
    const interactive = b.submit(rows(1, 9), 1).then(() => order.push(9));
    open();
    await Promise.all([...low, interactive]);
    // The first low batch was already dispatched; the interactive request goes next, ahead of the two queued low ones.
    assert.deepEqual(order, [1, 9, 2, 3]);
    assert.deepEqual(sizes, [2, 1, 2, 2]);
  });

  it('sends a batch as soon as it is full, without waiting for the delay', async () => {
    const { sizes, submit } = batcher({ maxBatchSize: 4, maxQueueDelayMs: 60_000 });
    const results = await Promise.all([1, 2, 3, 4].map(submit));
    assert.deepEqual(sizes, [4]);
    assert.deepEqual(
      results.map((r) => Array.from(r.outputs.x!.data as Float32Array)),
      [[2], [4], [6], [8]],
    );
    assert.deepEqual(
      results.map((r) => r.batchSize),
      [4, 4, 4, 4],
    );
  });

  it('answers a batch of large outputs a turn at a time, so other work runs between the answers', async () => {
    const { b, sizes } = batcher({ maxBatchSize: 4, maxQueueDelayMs: 60_000 });
    // 64 KiB out per request: one answer a turn. Work queued as the first answer arrives (a socket read, a /health
    // request) stands between the later answers.
    const wide = (v: number) => ({
      x: { dtype: 'float32', shape: [1, 16384], data: new Float32Array(16384).fill(v) } as Tensor,
    });
    let otherWorkRan = false;
    const seen: Array<[number, boolean]> = [];
    const answers = [1, 2, 3, 4].map((v) =>
      b.submit(wide(v), 1).then((r) => {
        seen.push([(r.outputs.x!.data as Float32Array)[0]!, otherWorkRan]);
        if (v === 1) setImmediate(() => (otherWorkRan = true));
      }),
    );
    await Promise.all(answers);
    assert.deepEqual(sizes, [4]);
    assert.deepEqual(
      seen.map(([x]) => x),
      [2, 4, 6, 8],
      'in the order of the batch',
    );
    assert.equal(seen[0]![1], false);
    assert.equal(seen[3]![1], true, 'the last answer came after the work queued at the first');
  });

  it('answers a batch of small outputs in one turn', async () => {
    const { sizes, submit } = batcher({ maxBatchSize: 4, maxQueueDelayMs: 60_000 });
    let otherWorkRan = false;
    const seen: boolean[] = [];
    const answers = [1, 2, 3, 4].map((v) =>
      submit(v).then(() => {
        seen.push(otherWorkRan);
        if (v === 1) setImmediate(() => (otherWorkRan = true));
      }),
    );
    await Promise.all(answers);
    assert.deepEqual(sizes, [4]);
    assert.deepEqual(seen, [false, false, false, false], 'no turn of the event loop between the answers');
  });

  it('sends a preferred size as soon as the queue can form one, without waiting for the delay', async () => {
    const { sizes, submit } = batcher({ maxBatchSize: 8, maxQueueDelayMs: 60_000, preferredBatchSizes: [2, 3] });
    // 1 waits; 1+2 form 2 and go; 3, 4, 5 queue while that batch runs and then go as 3, the largest they form.
    await Promise.all([1, 2, 3, 4, 5].map(submit));
    assert.deepEqual(sizes, [2, 3]);
  });

  it('sends the largest preferred size the queue can form and keeps the rest, which goes whole after the delay', async () => {
    let open!: () => void;
    const gate = new Promise<void>((r) => (open = r));
    const { sizes, submit } = batcher({ maxBatchSize: 8, maxQueueDelayMs: 40, preferredBatchSizes: [2, 4] }, gate);
    const first = [1, 2].map(submit);
    const rest = [3, 4, 5, 6, 7].map(submit);
    await new Promise((r) => setTimeout(r, 80));
    // The model is busy with the first batch: the other five wait, although the delay has passed.
    assert.deepEqual(sizes, []);
    open();
    const results = await Promise.all([...first, ...rest]);
    assert.deepEqual(sizes, [2, 4, 1]);
    assert.deepEqual(
      results.map((r) => r.batchSize),
      [2, 2, 4, 4, 4, 4, 1],
    );
    assert.deepEqual(
      results.map((r) => (r.outputs.x!.data as Float32Array)[0]),
      [2, 4, 6, 8, 10, 12, 14],
    );
  });

  it('waits the delay when no preferred size can be formed, then sends everything', async () => {
    const { sizes, submit } = batcher({ maxBatchSize: 8, maxQueueDelayMs: 40, preferredBatchSizes: [4] });
    const started = performance.now();
    await Promise.all([1, 2, 3].map(submit));
    assert.ok(performance.now() - started >= 35, 'three requests form no preferred size: they waited for the delay');
    assert.deepEqual(sizes, [3]);
  });

  it('counts rows, not requests, and sends a full batch at once when rows skip every preferred size', async () => {
    const { b, sizes } = batcher({ maxBatchSize: 8, maxQueueDelayMs: 60_000, preferredBatchSizes: [3] });
    const two = (v: number) =>
      b.submit({ x: { dtype: 'float32', shape: [2, 1], data: Float32Array.of(v, v) } as Tensor }, 2);
    const results = await Promise.all([1, 2, 3, 4].map(two));
    assert.deepEqual(sizes, [8]);
    assert.deepEqual(
      results.map((r) => Array.from(r.outputs.x!.data as Float32Array)),
      [
        [2, 2],
        [4, 4],
        [6, 6],
        [8, 8],
      ],
    );
  });

  it('waits up to the delay for a partial batch, and gathers requests while the model is busy', async () => {
    let open!: () => void;
    const gate = new Promise<void>((r) => (open = r));
    const { sizes, submit } = batcher({ maxBatchSize: 8, maxQueueDelayMs: 5 }, gate);
    const first = submit(1);
    await new Promise((r) => setTimeout(r, 30));
    const rest = [2, 3, 4].map(submit);
    await new Promise((r) => setTimeout(r, 30));
    open();
    await Promise.all([first, ...rest]);
    assert.deepEqual(sizes, [1, 3]);
  });

  it('refuses requests beyond the queue limit with 503 and Retry-After', async () => {
    let open!: () => void;
    const gate = new Promise<void>((r) => (open = r));
    const { submit } = batcher({ maxBatchSize: 1, maxQueueDelayMs: 0, maxQueued: 2 }, gate);
    const running = submit(1);
    const queued = [submit(2), submit(3)];
    await assert.rejects(
      submit(4),
      (err: NucleusError) => err.status === 503 && err.code === 'queue_full' && err.headers['retry-after'] === '1',
    );
    open();
    await Promise.all([running, ...queued]);
  });

  it('drains on close: queued requests still run, new ones are refused', async () => {
    const { b, sizes, submit } = batcher({ maxBatchSize: 8, maxQueueDelayMs: 60_000 });
    const pending = [submit(1), submit(2)];
    await b.drain(5000);
    await Promise.all(pending);
    assert.deepEqual(sizes, [2]);
    await assert.rejects(submit(3), (err: NucleusError) => err.code === 'model_unloading');
  });

  it('tells the queue depth when it changes, and cancels only a request still waiting in the queue', async () => {
    let open!: () => void;
    const gate = new Promise<void>((r) => (open = r));
    const depths: number[] = [];
    const { b } = mainThreadBatcher(
      'double',
      { maxBatchSize: 1, maxQueueDelayMs: 0 },
      async (x) => {
        await gate;
        return { x };
      },
      (depth) => depths.push(depth),
    );
    const one = (v: number, signal: AbortSignal) => b.submit(row(v), 1, { signal });
    // Dispatched at once (the worker is free): it never waited in the queue, so its cancel has nothing to take out.
    const first = new AbortController();
    const running = one(1, first.signal);
    first.abort();
    const waiting = one(2, new AbortController().signal);
    const cancelled = new AbortController();
    const dropped = one(3, cancelled.signal);
    cancelled.abort();
    await assert.rejects(dropped, (err: NucleusError) => err.status === 499 && err.code === 'request_cancelled');
    open();
    await Promise.all([running, waiting]);
    // 0 once (the first request queued and left in one go), then 1 and 2 waiting, 1 after the cancel, 0 as it runs.
    assert.deepEqual(depths, [0, 1, 2, 1, 0]);
  });
});
