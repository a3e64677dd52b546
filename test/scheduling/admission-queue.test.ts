import { strict as assert } from 'node:assert';
import { join } from 'node:path';
import type { NucleusError, SchedulerStrategy } from '@nucleus/sdk';
import { ExtensionPoints } from '@nucleus/sdk';
import { startTestKernel } from '@nucleus/sdk/testing';
import { AdmissionQueue, type Priority } from '@nucleus/core/internal/engine/admission/admission-queue';
import {
  fifo,
  leastLoaded,
  memoryAware,
  prefixAffinity,
  priorityWithAging,
  roundRobin,
} from '@nucleus/plugin-scheduler';
import { REPO_ROOT } from '../helpers/paths.js';

function queue(
  opts: { high?: number; low?: number; timeoutMs?: number; strategy?: SchedulerStrategy; clock?: { t: number } } = {},
) {
  return new AdmissionQueue<string>({
    highWatermark: () => opts.high ?? 1000,
    lowWatermark: () => opts.low ?? 500,
    timeoutMs: () => opts.timeoutMs ?? 30_000,
    strategy: () => opts.strategy ?? priorityWithAging(2000),
    ...(opts.clock ? { now: () => opts.clock!.t } : {}),
  });
}

describe('admission queue', () => {
  it('sheds at the high watermark with 503 and Retry-After, and reopens only below the low one', () => {
    const q = queue({ high: 4, low: 2 });
    for (let i = 0; i < 4; i++) q.admit(`r${i}`);
    assert.throws(
      () => q.admit('r4'),
      (err: NucleusError) =>
        err.status === 503 && err.headers['retry-after'] === '1' && err.code === 'server_overloaded',
    );
    q.take(1);
    assert.equal(q.depth, 3);
    assert.throws(() => q.admit('r5'), /at capacity/, 'still shedding between the watermarks');
    q.take(1);
    assert.equal(q.depth, 2);
    assert.throws(() => q.admit('r6'), /at capacity/, 'at the low watermark it still sheds');
    q.take(1);
    assert.equal(q.isShedding, false);
    q.admit('r7');
    q.admit('r8');
    assert.equal(q.depth, 3, 'accepting again until the high watermark');
  });

  it('answers a request that waits past queue.timeoutMs with 408, and honours a shorter own deadline', async () => {
    const q = queue({ timeoutMs: 40 });
    const slow = q.admit('slow');
    const hurried = q.admit('hurried', { deadlineMs: 10 });
    const first = await Promise.race([slow.rejected.then(() => 'slow'), hurried.rejected.then(() => 'hurried')]);
    assert.equal(first, 'hurried');
    assert.equal((await hurried.rejected).status, 408);
    assert.match((await hurried.rejected).message, /deadline of 10 ms/);
    const err = await slow.rejected;
    assert.equal(err.status, 408);
    assert.equal(err.code, 'queue_timeout');
    assert.equal(q.depth, 0);
  });

  it('drops a request whose client went away, and never times out one that was taken', async () => {
    const q = queue({ timeoutMs: 20 });
    const controller = new AbortController();
    const gone = q.admit('gone', { signal: controller.signal });
    const kept = q.admit('kept');
    controller.abort();
    assert.equal((await gone.rejected).code, 'client_closed_request');
    assert.deepEqual(
      q.take(10).map((t) => t.payload),
      ['kept'],
    );
    const late = await Promise.race([
      kept.rejected.then(() => 'rejected'),
      new Promise((r) => setTimeout(() => r('quiet'), 50)),
    ]);
    assert.equal(late, 'quiet');
  });

  it('takes high before normal before low, oldest first within a class', () => {
    const clock = { t: 0 };
    const q = queue({ clock });
    const order: Array<[string, Priority]> = [
      ['l1', 'low'],
      ['n1', 'normal'],
      ['h1', 'high'],
      ['n2', 'normal'],
      ['h2', 'high'],
    ];
    for (const [p, priority] of order) {
      q.admit(p, { priority });
      clock.t++;
    }
    assert.deepEqual(
      q.take(5).map((t) => t.payload),
      ['h1', 'h2', 'n1', 'n2', 'l1'],
    );
    const f = queue({ strategy: fifo, clock });
    for (const [p, priority] of order) {
      f.admit(p, { priority });
      clock.t++;
    }
    assert.deepEqual(
      f.take(5).map((t) => t.payload),
      ['l1', 'n1', 'h1', 'n2', 'h2'],
    );
  });

  it('never starves low priority: behind a steady stream of high requests it is taken within 2 × agingMs', () => {
    const agingMs = 100;
    const clock = { t: 0 };
    const q = queue({ clock, strategy: priorityWithAging(agingMs) });
    q.admit('low', { priority: 'low' });
    let takenAt: number | undefined;
    // Every 5 ms a high request arrives and one request is served: without aging, low would wait forever.
    for (let step = 0; step < 1000 && takenAt === undefined; step++) {
      q.admit(`h${step}`, { priority: 'high' });
      clock.t += 5;
      if (q.take(1)[0]?.payload === 'low') takenAt = clock.t;
    }
    assert.ok(takenAt !== undefined, 'low was taken');
    assert.ok(takenAt <= 2 * agingMs + 10, `low waited ${takenAt} ms`);
  });

  it('under overload, no high request that arrived more than 2 × agingMs after a low one is served before it', () => {
    const agingMs = 100;
    const clock = { t: 0 };
    const q = queue({ clock, strategy: priorityWithAging(agingMs) });
    clock.t = 1000;
    q.admit('low', { priority: 'low' });
    const servedBefore: number[] = [];
    // Two high requests arrive per request served: the backlog grows without bound.
    for (let step = 0; step < 2000; step++) {
      q.admit(`h${step}a`, { priority: 'high' });
      q.admit(`h${step}b`, { priority: 'high' });
      clock.t += 5;
      const [ticket] = q.take(1);
      if (ticket?.payload === 'low') break;
      servedBefore.push(ticket!.enqueuedAt);
    }
    assert.ok(servedBefore.length < 1999, 'low was served');
    assert.ok(
      Math.max(...servedBefore) <= 1000 + 2 * agingMs,
      `a high request from t=${Math.max(...servedBefore)} went first`,
    );
  });
});

describe('routing strategies', () => {
  const w = (id: string, activeBatches: number, inflight: number, healthy = true, freeMemoryBytes?: number) => ({
    id,
    activeBatches,
    inflight,
    healthy,
    ...(freeMemoryBytes === undefined ? {} : { freeMemoryBytes }),
  });

  it('round-robin cycles through healthy workers only', () => {
    const rr = roundRobin();
    const workers = [w('a', 0, 0), w('b', 0, 0, false), w('c', 0, 0)];
    assert.deepEqual(
      [0, 1, 2, 3].map(() => rr.pickWorker(workers, { estimatedBytes: 0 })),
      [0, 2, 0, 2],
    );
    assert.equal(rr.pickWorker([w('x', 0, 0, false)], { estimatedBytes: 0 }), -1);
  });

  it('least-loaded picks the fewest active batches, then the fewest in flight', () => {
    assert.equal(
      leastLoaded.pickWorker([w('a', 2, 1), w('b', 1, 9), w('c', 1, 3), w('d', 0, 0, false)], { estimatedBytes: 0 }),
      2,
    );
  });

  it('memory-aware skips workers without room for the batch, and says when none has any', () => {
    const workers = [w('a', 0, 0, true, 100), w('b', 3, 3, true, 5000), w('c', 1, 1, true, 4000)];
    assert.equal(memoryAware.pickWorker(workers, { estimatedBytes: 1000 }), 2);
    assert.equal(memoryAware.pickWorker(workers, { estimatedBytes: 50 }), 0);
    assert.equal(memoryAware.pickWorker(workers, { estimatedBytes: 10_000 }), -1);
  });

  it('prefix-affinity keeps a key on one worker, spreads keys, moves only the keys of a worker that leaves, and passes over a much busier one', () => {
    const pick = (workers: ReturnType<typeof w>[], affinityKey?: string, estimatedBytes = 0) =>
      prefixAffinity.pickWorker(workers, { estimatedBytes, ...(affinityKey !== undefined && { affinityKey }) });
    const three = [w('0', 0, 0), w('1', 0, 0), w('2', 0, 0)];
    const keys = Array.from({ length: 60 }, (_, i) => `conversation:talk-${i}`);
    const chosen = keys.map((k) => pick(three, k));
    assert.deepEqual(
      keys.map((k) => pick(three, k)),
      chosen,
      'the same worker each time',
    );
    for (const i of [0, 1, 2])
      assert.ok(
        chosen.filter((c) => c === i).length >= 10,
        `keys spread: worker ${i} has ${chosen.filter((c) => c === i).length} of 60`,
      );
    // Worker 2 unhealthy: only its keys move.
    const withoutLast = [w('0', 0, 0), w('1', 0, 0), w('2', 0, 0, false)];
    for (const [i, k] of keys.entries()) {
      const now = pick(withoutLast, k);
      if (chosen[i] !== 2) assert.equal(now, chosen[i], `${k} stays`);
      else assert.notEqual(now, 2);
    }
    // Load: its worker is kept up to twice the least loaded one's sequences plus 4, then passed over.
    const key = keys[0]!;
    const own = chosen[0]!;
    const loaded = (ownLoad: number, othersLoad: number) =>
      three.map((x, i) => ({ ...x, activeBatches: i === own ? ownLoad : othersLoad }));
    assert.equal(pick(loaded(6, 1), key), own);
    assert.notEqual(pick(loaded(7, 1), key), own);
    // No key: the least loaded; no worker with room: -1.
    assert.equal(pick([w('a', 2, 2), w('b', 1, 1), w('c', 3, 3)]), 1);
    assert.equal(pick([w('a', 0, 0, true, 100), w('b', 0, 0, true, 100)], key, 1000), -1);
  });

  it('are contributed by the scheduler plugin: queue orders and replica routers at points of their own', async () => {
    const kit = await startTestKernel({ plugins: [join(REPO_ROOT, 'plugins/scheduler')] });
    try {
      const names = (point: { id: string }) =>
        kit.kernel.extensions
          .point(point)
          .list()
          .map((c) => c.name)
          .sort();
      assert.equal(kit.kernel.plugins.get('scheduler').state, 'active');
      assert.deepEqual(names(ExtensionPoints.schedulerStrategy), ['fifo', 'priority']);
      assert.deepEqual(names(ExtensionPoints.replicaRouter), [
        'least-loaded',
        'memory-aware',
        'prefix-affinity',
        'round-robin',
      ]);
    } finally {
      await kit.stop();
    }
  });
});
