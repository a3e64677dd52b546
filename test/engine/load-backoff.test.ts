import { strict as assert } from 'node:assert';
import { LoadBackoff } from '@nucleus/core/internal/engine/load-backoff';

describe('LoadBackoff: the wait between load attempts of a model that keeps failing', () => {
  let now = 1_000_000;
  const clock = (): number => now;

  it('doubles from the first wait up to the cap, and starts over after a reset', () => {
    const backoff = new LoadBackoff(() => ({ initialMs: 1000, maxMs: 5000 }), clock);
    assert.equal(backoff.refusal('m'), undefined);
    assert.deepEqual(
      Array.from({ length: 5 }, () => backoff.failed('broken')),
      [1000, 2000, 4000, 5000, 5000],
    );
    assert.equal(backoff.failures, 5);
    backoff.reset();
    assert.equal(backoff.failed('broken'), 1000);
  });

  it('refuses with 503 model_unavailable, Retry-After and the reason until the wait is over', () => {
    const backoff = new LoadBackoff(() => ({ initialMs: 2500, maxMs: 60_000 }), clock);
    backoff.failed('the file is truncated');
    const refusal = backoff.refusal('m');
    assert.deepEqual([refusal?.status, refusal?.code], [503, 'model_unavailable']);
    assert.equal(refusal?.headers?.['retry-after'], '3');
    assert.match(refusal?.message ?? '', /model 'm' could not be loaded: the file is truncated; .* attempt 2/);
    assert.equal(backoff.status()?.retryAfterMs, 2500);
    now += 2500;
    assert.equal(backoff.refusal('m'), undefined);
    assert.equal(backoff.status()?.retryAfterMs, 0);
  });

  it('with a first wait of 0, every request may try', () => {
    const backoff = new LoadBackoff(() => ({ initialMs: 0, maxMs: 300_000 }), clock);
    for (let i = 0; i < 40; i++) assert.equal(backoff.failed('broken'), 0);
    assert.equal(backoff.refusal('m'), undefined);
  });
});
