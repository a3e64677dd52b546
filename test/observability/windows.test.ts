import { strict as assert } from 'node:assert';
import { quantile, SlidingWindow, summarize, WindowedCounter } from '@nucleus/sdk';

describe('telemetry windows', () => {
  it('computes nearest-rank percentiles', () => {
    const values = Array.from({ length: 100 }, (_, i) => i + 1);
    assert.deepEqual(summarize(values.reverse()), { count: 100, p50: 50, p95: 95, p99: 99, mean: 50.5, max: 100 });
    assert.equal(quantile([7], 0.99), 7);
    assert.equal(quantile([], 0.5), null);
  });

  it('keeps samples for the retention and answers any window within it', () => {
    const w = new SlidingWindow(10_000, 1000);
    const t0 = 1_000_000;
    for (let i = 0; i < 10; i++) w.add(i, t0 + i * 1000);
    const now = t0 + 9_500;
    assert.deepEqual(w.values(2000, now), [9, 8]);
    assert.equal(w.summary(5000, now).count, 5);
    assert.equal(w.values(60_000, now).length, 10, 'a window beyond the retention is capped to it');
    assert.deepEqual(w.values(1000, t0 + 30_000), []);
  });

  it('drops the oldest samples beyond its capacity', () => {
    const w = new SlidingWindow(60_000, 3);
    for (let i = 1; i <= 5; i++) w.add(i, 1000 + i);
    assert.deepEqual(w.values(60_000, 2000), [5, 4, 3]);
  });

  it('sums amounts per second and gives rates over a window', () => {
    const c = new WindowedCounter(10);
    const t0 = 5_000_000;
    c.add(4, t0);
    c.add(6, t0 + 500);
    c.add(10, t0 + 3000);
    assert.equal(c.sum(1, t0 + 3100), 10);
    assert.equal(c.sum(4, t0 + 3100), 20);
    assert.equal(c.rate(4, t0 + 3100), 5);
    assert.equal(c.sum(10, t0 + 20_000), 0, 'old buckets are not counted again after the ring wraps');
  });
});
