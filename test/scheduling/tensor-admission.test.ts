import { strict as assert } from 'node:assert';
import type { NucleusError } from '@nucleus/sdk';
import type { BatchSettings } from '@nucleus/core/internal/engine/index';
import { mainThreadBatcher } from '../helpers/main-thread-batcher.js';

/** A batcher over a main-thread "model" that runs one row at a time, held until `release` is called. */
function heldBatcher(settings: Partial<BatchSettings>) {
  const holds: (() => void)[] = [];
  const { submit } = mainThreadBatcher('held', { maxBatchSize: 1, maxQueueDelayMs: 0, ...settings }, async (x) => {
    await new Promise<void>((r) => holds.push(r));
    return { x };
  });
  const release = async () => {
    holds.shift()?.();
    await new Promise((r) => setTimeout(r, 5));
  };
  return { submit, release };
}

describe('tensor admission: the batcher queue follows the same watermarks as the generation queue', () => {
  it('refuses at the high watermark and reopens only below the low one', async () => {
    const { submit, release } = heldBatcher({ maxQueued: 3, reopenBelow: 1 });
    const accepted = [submit(0)];
    await new Promise((r) => setTimeout(r, 5)); // the first one is running, not queued
    accepted.push(submit(1), submit(2), submit(3));
    await assert.rejects(submit(9), (err: NucleusError) => err.status === 503 && err.headers['retry-after'] === '1');
    await release(); // 2 queued: not below 1
    await assert.rejects(submit(9), (err: NucleusError) => err.status === 503);
    await release(); // 1 queued
    await assert.rejects(submit(9), (err: NucleusError) => err.status === 503);
    await release(); // 0 queued: open again
    accepted.push(submit(4));
    for (let i = 0; i < 3; i++) await release();
    assert.equal((await Promise.all(accepted)).length, 5);
  });

  it('answers 408 queue_timeout to a request that waited longer than queue.timeoutMs', async () => {
    const { submit, release } = heldBatcher({ queueTimeoutMs: 10 });
    const running = submit(0);
    await new Promise((r) => setTimeout(r, 5));
    const late = submit(1);
    late.catch(() => undefined);
    await new Promise((r) => setTimeout(r, 30));
    await release();
    await running;
    await assert.rejects(late, (err: NucleusError) => err.status === 408 && err.code === 'queue_timeout');
  });
});
