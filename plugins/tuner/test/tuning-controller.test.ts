import assert from 'node:assert/strict';
import { type TensorWindow, TuningController, type TunerSettings } from '@nucleus/plugin-tuner';

const settings: TunerSettings = {
  targetP99Ms: 100,
  targetItlP99Ms: 50,
  hysteresis: 0.2,
  patience: 2,
  minSamples: 20,
  maxBatchSize: { min: 2, max: 16, step: 4 },
  maxQueueDelayMs: { min: 0, max: 5, step: 1 },
  maxRunning: { min: 2, max: 8, step: 2 },
};

const window = (
  p99Ms: number,
  meanBatchSize: number,
  samples = 100,
  throughputPerS = 200,
  batchP99Ms: number | null = null,
): TensorWindow => ({
  samples,
  p99Ms,
  throughputPerS,
  meanBatchSize,
  largestBatch: Math.ceil(meanBatchSize),
  batchP99Ms,
});

describe('TuningController: AIMD toward the p99 target, within bounds, with hysteresis', () => {
  it('halves the queue delay first, then the batch size, when p99 stays over the target', () => {
    const c = new TuningController(settings);
    const knobs = { maxBatchSize: 16, maxQueueDelayMs: 4 };
    assert.deepEqual(c.tensor('m', window(150, 10), knobs), [], 'one window over is not yet a trend');
    const [first] = c.tensor('m', window(150, 10), knobs);
    assert.equal(first!.knob, 'maxQueueDelayMs');
    assert.deepEqual([first!.previous, first!.value], [4, 2]);
    assert.match(first!.reason, /p99 150 ms is over the 100 ms target at 200 req\/s: halving the queue delay/);
    assert.equal(first!.p99Ms, 150);
    assert.equal(first!.targetP99Ms, 100);
    knobs.maxQueueDelayMs = 0;
    c.tensor('m', window(150, 10), knobs);
    const [second] = c.tensor('m', window(150, 10), knobs);
    assert.deepEqual([second!.knob, second!.previous, second!.value], ['maxBatchSize', 16, 8]);
  });

  it('grows the batch size while batches fill and p99 has headroom, the queue delay while they stay small', () => {
    const c = new TuningController(settings);
    c.tensor('m', window(40, 7.5), { maxBatchSize: 8, maxQueueDelayMs: 1 });
    const [grow] = c.tensor('m', window(40, 7.5), { maxBatchSize: 8, maxQueueDelayMs: 1 });
    assert.deepEqual([grow!.knob, grow!.value], ['maxBatchSize', 12]);
    // More throughput in the window after: the increase stays.
    c.tensor('m', window(40, 2, 100, 300), { maxBatchSize: 12, maxQueueDelayMs: 1 });
    const [wait] = c.tensor('m', window(40, 2), { maxBatchSize: 12, maxQueueDelayMs: 1 });
    assert.deepEqual([wait!.knob, wait!.value], ['maxQueueDelayMs', 2]);
  });

  it('takes back an increase that did not raise throughput, or pushed p99 over, and rests that knob', () => {
    const c = new TuningController(settings);
    let knobs = { maxBatchSize: 16, maxQueueDelayMs: 0 };
    c.tensor('m', window(10, 2), knobs);
    const [wait] = c.tensor('m', window(10, 2), knobs);
    assert.deepEqual([wait!.knob, wait!.value], ['maxQueueDelayMs', 1]);
    knobs = { maxBatchSize: 16, maxQueueDelayMs: 1 };
    const [back] = c.tensor('m', window(12, 2, 100, 150), knobs);
    assert.deepEqual([back!.knob, back!.previous, back!.value], ['maxQueueDelayMs', 1, 0]);
    assert.match(back!.reason, /raising maxQueueDelayMs to 1 did not raise throughput \(200 → 150 req\/s\): back to 0/);
    knobs = { maxBatchSize: 16, maxQueueDelayMs: 0 };
    for (let i = 0; i < 8; i++) assert.deepEqual(c.tensor('m', window(10, 2), knobs), [], 'resting');
    c.tensor('m', window(10, 2), knobs);
    assert.equal(c.tensor('m', window(10, 2), knobs)[0]?.knob, 'maxQueueDelayMs', 'tried again after the rest');
    const [over] = c.tensor('m', window(130, 2, 100, 400), { maxBatchSize: 16, maxQueueDelayMs: 1 });
    assert.match(over!.reason, /raising maxQueueDelayMs to 1 pushed p99 to 130 ms, over the 100 ms target: back to 0/);
  });

  it('does not shrink quick batches when p99 is queueing behind a full server', () => {
    const c = new TuningController(settings);
    const knobs = { maxBatchSize: 16, maxQueueDelayMs: 0 };
    for (let i = 0; i < 4; i++)
      assert.deepEqual(c.tensor('m', window(300, 16, 100, 200, 20), knobs), [], 'batches take 20 ms of 100');
    // p99 has been over for windows already: the first window with slow batches moves it.
    const [shrink] = c.tensor('m', window(300, 16, 100, 200, 70), knobs);
    assert.deepEqual([shrink!.knob, shrink!.value], ['maxBatchSize', 8]);
    assert.match(shrink!.reason, /a batch alone takes up to 70 ms: halving the batch size/);
  });

  it('does not shrink a batch cap that no batch reaches half of', () => {
    const c = new TuningController(settings);
    const knobs = { maxBatchSize: 16, maxQueueDelayMs: 0 };
    for (let i = 0; i < 4; i++)
      assert.deepEqual(c.tensor('m', window(300, 2, 100, 200, 70), knobs), [], 'batches of 2');
    const [shrink] = c.tensor('m', window(300, 9, 100, 200, 70), knobs);
    assert.deepEqual([shrink!.knob, shrink!.value], ['maxBatchSize', 8], 'a batch of 9 would be split by a cap of 8');
  });

  it('respects the bounds: never above max, never below min', () => {
    const c = new TuningController(settings);
    const high = { maxBatchSize: 14, maxQueueDelayMs: 5 };
    c.tensor('m', window(10, 14), high);
    assert.equal(c.tensor('m', window(10, 14), high)[0]!.value, 16, 'capped at max, not 18');
    const top = { maxBatchSize: 16, maxQueueDelayMs: 5 };
    for (let i = 0; i < 4; i++)
      assert.deepEqual(c.tensor('m', window(10, 16, 100, 300 + i), top), [], 'at max: nothing to do');
    const low = { maxBatchSize: 3, maxQueueDelayMs: 0 };
    c.tensor('m', window(500, 3), low);
    assert.equal(c.tensor('m', window(500, 3), low)[0]!.value, 2, 'floored at min, not 1');
    const bottom = { maxBatchSize: 2, maxQueueDelayMs: 0 };
    for (let i = 0; i < 4; i++) assert.deepEqual(c.tensor('m', window(500, 2), bottom), [], 'at min: nothing to do');
  });

  it('holds inside the hysteresis band, on thin windows, and on windows that disagree', () => {
    const c = new TuningController(settings);
    const knobs = { maxBatchSize: 8, maxQueueDelayMs: 2 };
    for (let i = 0; i < 5; i++)
      assert.deepEqual(c.tensor('m', window(90, 8), knobs), [], '90 ms: under target, over 80');
    for (let i = 0; i < 5; i++) assert.deepEqual(c.tensor('m', window(500, 8, 5), knobs), [], 'too few samples');
    for (let i = 0; i < 6; i++)
      assert.deepEqual(c.tensor('m', window(i % 2 ? 150 : 40, 8), knobs), [], 'alternating windows never move it');
  });

  it('judges each model on its own', () => {
    const c = new TuningController(settings);
    const knobs = { maxBatchSize: 8, maxQueueDelayMs: 2 };
    c.tensor('a', window(150, 8), knobs);
    assert.deepEqual(c.tensor('b', window(150, 8), knobs), [], "b's first window");
    assert.equal(c.tensor('a', window(150, 8), knobs).length, 1);
  });

  it('halves maxRunning when inter-token p99 is over its target, grows it only while generations wait', () => {
    const c = new TuningController(settings);
    const llm = (itlP99Ms: number, waiting: number) => ({ samples: 100, itlP99Ms, tokensPerS: 300, waiting });
    c.llm(llm(80, 0), 8);
    assert.deepEqual(
      c.llm(llm(80, 0), 8).map((d) => [d.knob, d.previous, d.value]),
      [['maxRunning', 8, 4]],
    );
    c.llm(llm(10, 0), 4);
    assert.deepEqual(c.llm(llm(10, 0), 4), [], 'headroom but nobody waits');
    // The headroom has held for two windows already: the first window in which generations wait moves it.
    const [grow] = c.llm(llm(10, 3), 4);
    assert.equal(grow!.value, 6);
    assert.match(grow!.reason, /3 generations wait/);
  });
});
