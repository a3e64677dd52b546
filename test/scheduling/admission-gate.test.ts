import { strict as assert } from 'node:assert';
import type { Contribution, ExtensionPointView, SchedulerStrategy } from '@nucleus/sdk';
import { AdmissionGate, resolveStrategy } from '@nucleus/core/internal/engine/admission/admission-gate';
import { configOf } from '../helpers/config.js';

/** A config whose values tests change, telling listeners like the real store does. */
function liveConfig(values: Record<string, unknown>) {
  return configOf(values);
}

function strategies(...list: SchedulerStrategy[]): ExtensionPointView<SchedulerStrategy> {
  const contributions = list.map(
    (value) => ({ name: value.name, value }) as unknown as Contribution<SchedulerStrategy>,
  );
  return {
    find: (name: string) => contributions.find((c) => c.name === name),
  } as unknown as ExtensionPointView<SchedulerStrategy>;
}

const tick = () => new Promise((r) => setTimeout(r, 5));

describe('admission gate: running slots in front of an engine', () => {
  it('lets waiting requests in by priority when a slot frees, and a raised scheduler.maxRunning applies at once', async () => {
    const config = liveConfig({
      'scheduler.maxRunning': 1,
      'scheduler.strategy': 'priority',
      'queue.highWatermark': 10,
      'queue.lowWatermark': 5,
      'queue.timeoutMs': 5000,
    });
    const gate = new AdmissionGate({ config });
    const first = await gate.acquire();
    const order: string[] = [];
    const waiters = (['low', 'normal', 'high', 'low'] as const).map((priority, i) =>
      gate.acquire({ priority }).then((slot) => (order.push(`${priority}${i}`), slot)),
    );
    await tick();
    assert.equal(gate.waiting, 4);
    first.release();
    await tick();
    assert.deepEqual(order, ['high2']);
    config.set('scheduler.maxRunning', 3);
    await tick();
    assert.deepEqual(order, ['high2', 'normal1', 'low0']);
    const slots = await Promise.all(waiters.slice(0, 3));
    slots[0]!.release();
    slots[0]!.release(); // idempotent: frees one slot, not two
    const last = await waiters[3]!;
    assert.deepEqual(order, ['high2', 'normal1', 'low0', 'low3']);
    assert.equal(gate.running, 3);
    for (const s of [...slots, last]) s.release();
    assert.equal(gate.running, 0);
    gate.close();
  });

  it('orders by the strategy scheduler.strategy names, falling back to the built-in order when no plugin gives it', async () => {
    const lifo: SchedulerStrategy = { name: 'lifo', order: (w) => w.map((_, i) => i).reverse() };
    assert.equal(resolveStrategy('lifo', strategies(lifo)), lifo);
    assert.equal(resolveStrategy('lifo', undefined).name, 'priority');
    assert.equal(resolveStrategy('fifo', undefined).name, 'fifo');
    const config = liveConfig({ 'scheduler.maxRunning': 1, 'scheduler.strategy': 'lifo' });
    const gate = new AdmissionGate({ config, strategies: strategies(lifo) });
    const first = await gate.acquire();
    const order: number[] = [];
    const waiters = [0, 1, 2].map((i) => gate.acquire({ priority: 'high' }).then((s) => (order.push(i), s)));
    first.release();
    (await waiters[2]!).release();
    (await waiters[1]!).release();
    (await waiters[0]!).release();
    assert.deepEqual(order, [2, 1, 0]);
    gate.close();
  });

  it('sheds with 503 + Retry-After past the high watermark until below the low one; 408 after the queue timeout or deadline', async () => {
    const config = liveConfig({
      'scheduler.maxRunning': 1,
      'queue.highWatermark': 3,
      'queue.lowWatermark': 1,
      'queue.timeoutMs': 60_000,
    });
    const gate = new AdmissionGate({ config });
    const running = await gate.acquire();
    const waiting = [0, 1, 2].map(() => gate.acquire());
    await assert.rejects(
      gate.acquire(),
      (err: { status: number; headers: Record<string, string> }) =>
        err.status === 503 && err.headers['retry-after'] === '1',
    );
    running.release();
    const a = await waiting[0]!;
    // Two wait, then one: not below the low watermark of 1, so still shedding.
    await assert.rejects(gate.acquire(), (err: { status: number }) => err.status === 503);
    a.release();
    const b = await waiting[1]!;
    await assert.rejects(gate.acquire(), (err: { status: number }) => err.status === 503);
    b.release();
    // None waits: admission reopens.
    const c = await waiting[2]!;
    const deadline = gate.acquire({ deadlineMs: 10 });
    await assert.rejects(
      deadline,
      (err: { status: number; code: string }) => err.status === 408 && err.code === 'queue_timeout',
    );
    config.set('queue.timeoutMs', 5);
    await assert.rejects(
      gate.acquire(),
      (err: { status: number; message: string }) => err.status === 408 && /queue\.timeoutMs/.test(err.message),
    );
    const controller = new AbortController();
    const gone = gate.acquire({ signal: controller.signal });
    controller.abort();
    await assert.rejects(gone, (err: { status: number }) => err.status === 499);
    c.release();
    assert.equal(gate.running, 0);
    assert.equal(gate.waiting, 0);
    gate.close();
  });

  it('admits a request costing several slots as one unit: all at once, never overtaken by cheaper ones, released per unit', async () => {
    const config = liveConfig({
      'scheduler.maxRunning': 4,
      'queue.highWatermark': 100,
      'queue.lowWatermark': 50,
      'queue.timeoutMs': 60_000,
    });
    const gate = new AdmissionGate({ config });
    const three = await gate.acquire({ cost: 3 });
    assert.equal(gate.running, 3);
    const order: string[] = [];
    const pair = gate.acquire({ cost: 2 }).then((s) => (order.push('pair'), s));
    const single = gate.acquire().then((s) => (order.push('single'), s));
    await tick();
    // One slot is free, but the pair at the head does not fit yet, and the single one may not jump it.
    assert.deepEqual(order, []);
    assert.equal(gate.waiting, 2);
    three.release(1);
    await tick();
    assert.deepEqual(order, ['pair']);
    assert.equal(gate.running, 4);
    three.release(5); // more than is held: releases the 2 left, no more
    await tick();
    assert.deepEqual(order, ['pair', 'single']);
    assert.equal(gate.running, 3);
    (await pair).release();
    (await single).release();
    three.release();
    assert.equal(gate.running, 0);
    await assert.rejects(gate.acquire({ cost: 5 }), (err: { status: number; code: string; message: string }) => {
      assert.equal(err.status, 400);
      assert.equal(err.code, 'exceeds_capacity');
      assert.match(err.message, /needs 5 running slots.*at most 4.*scheduler\.maxRunning/);
      return true;
    });
    gate.close();
  });

  it('compares the slots the queue waits for, not its entries, with the watermarks', async () => {
    const config = liveConfig({
      'scheduler.maxRunning': 4,
      'queue.highWatermark': 4,
      'queue.lowWatermark': 2,
      'queue.timeoutMs': 60_000,
    });
    const gate = new AdmissionGate({ config });
    const all = await gate.acquire({ cost: 4 });
    // One entry asking for 4 slots reaches the high watermark of 4 by itself.
    const big = gate.acquire({ cost: 4 });
    await tick();
    assert.equal(gate.queue.queuedCost, 4);
    await assert.rejects(
      gate.acquire(),
      (err: { status: number; message: string }) => err.status === 503 && /4 generations queued/.test(err.message),
    );
    all.release();
    (await big).release();
    assert.equal(gate.queue.isShedding, false);
    (await gate.acquire()).release();
    gate.close();
  });
});
