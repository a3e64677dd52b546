import assert from 'node:assert/strict';
import { leastLoaded, memoryAware, prefixAffinity, roundRobin } from '@nucleus/plugin-scheduler';
import type { WorkerLoad } from '@nucleus/sdk';

const worker = (id: string, activeBatches: number, inflight = 0, extra: Partial<WorkerLoad> = {}): WorkerLoad => ({
  id,
  healthy: true,
  activeBatches,
  inflight,
  ...extra,
});
const request = { estimatedBytes: 100 };

describe('scheduler: replica routers', () => {
  it('round-robin visits each healthy worker in turn and skips unhealthy ones', () => {
    const router = roundRobin();
    const workers = [worker('a', 0), worker('b', 0, 0, { healthy: false }), worker('c', 0)];
    assert.deepEqual(
      [0, 1, 2, 3].map(() => router.pickWorker(workers, request)),
      [0, 2, 0, 2],
    );
    assert.equal(router.name, 'round-robin');
  });

  it('round-robin answers -1 with no healthy worker, and each router keeps its own turn', () => {
    assert.equal(roundRobin().pickWorker([worker('a', 0, 0, { healthy: false })], request), -1);
    assert.equal(roundRobin().pickWorker([], request), -1);
    const one = roundRobin();
    one.pickWorker([worker('a', 0), worker('b', 0)], request);
    assert.equal(roundRobin().pickWorker([worker('a', 0), worker('b', 0)], request), 0);
  });

  it('least-loaded picks the fewest batches, then the fewest in flight, never an unhealthy worker', () => {
    const workers = [
      worker('busy', 3, 0),
      worker('down', 0, 0, { healthy: false }),
      worker('one-many', 1, 9),
      worker('one-few', 1, 2),
    ];
    assert.equal(leastLoaded.pickWorker(workers, request), 3);
    assert.equal(leastLoaded.pickWorker([worker('down', 0, 0, { healthy: false })], request), -1);
    // A tie on both counts keeps the first.
    assert.equal(leastLoaded.pickWorker([worker('a', 1, 1), worker('b', 1, 1)], request), 0);
  });

  it('memory-aware passes over workers without room for the request, -1 when none has room', () => {
    const workers = [
      worker('idle-full', 0, 0, { freeMemoryBytes: 99 }),
      worker('busy-roomy', 2, 0, { freeMemoryBytes: 1000 }),
    ];
    assert.equal(memoryAware.pickWorker(workers, request), 1);
    assert.equal(memoryAware.pickWorker(workers, { estimatedBytes: 1001 }), -1);
    // Unknown free memory counts as room; exactly enough is enough.
    assert.equal(
      memoryAware.pickWorker([worker('unknown', 5), worker('exact', 0, 0, { freeMemoryBytes: 100 })], request),
      1,
    );
    assert.equal(memoryAware.pickWorker([worker('unknown', 5)], request), 0);
  });

  it('prefix-affinity sends one key to one worker whatever the order of the list', () => {
    const workers = ['w0', 'w1', 'w2', 'w3'].map((id) => worker(id, 1));
    const keys = Array.from({ length: 40 }, (_, i) => `conversation-${i}`);
    const chosen = keys.map(
      (affinityKey) => workers[prefixAffinity.pickWorker(workers, { ...request, affinityKey })]!.id,
    );
    const reversed = [...workers].reverse();
    assert.deepEqual(
      keys.map((affinityKey) => reversed[prefixAffinity.pickWorker(reversed, { ...request, affinityKey })]!.id),
      chosen,
    );
    // Forty keys over four workers: rendezvous hashing uses more than one of them.
    assert.ok(new Set(chosen).size > 1, `all keys went to ${chosen[0]}`);
  });

  it('prefix-affinity moves only the keys of a worker that leaves', () => {
    const workers = ['w0', 'w1', 'w2'].map((id) => worker(id, 0));
    const keys = Array.from({ length: 30 }, (_, i) => `k${i}`);
    const pick = (list: WorkerLoad[], affinityKey: string) =>
      list[prefixAffinity.pickWorker(list, { ...request, affinityKey })]!.id;
    const before = keys.map((k) => pick(workers, k));
    const withoutW1 = [workers[0]!, { ...workers[1]!, healthy: false }, workers[2]!];
    const after = keys.map((k) => pick(withoutW1, k));
    keys.forEach((k, i) => {
      assert.notEqual(after[i], 'w1', k);
      if (before[i] !== 'w1') assert.equal(after[i], before[i], `${k} moved from ${before[i]} to ${after[i]}`);
    });
  });

  it('prefix-affinity falls back to the least loaded without a key or when the chosen worker is much busier', () => {
    const keyed = { ...request, affinityKey: 'session-7' };
    const idle = ['a', 'b', 'c'].map((id) => worker(id, 0));
    const home = prefixAffinity.pickWorker(idle, keyed);
    const otherIdle = home === 0 ? 1 : 0;
    // Home has more than 2 × min + 4 sequences beyond the least loaded: passed over.
    const crowded = idle.map((w, i) => (i === home ? { ...w, activeBatches: 5 } : w));
    assert.equal(prefixAffinity.pickWorker(crowded, keyed), otherIdle);
    // At exactly the slack it stays home.
    const slack = idle.map((w, i) => (i === home ? { ...w, activeBatches: 4 } : w));
    assert.equal(prefixAffinity.pickWorker(slack, keyed), home);
    const loads = [worker('a', 2), worker('b', 1), worker('c', 3)];
    assert.equal(prefixAffinity.pickWorker(loads, request), 1);
    assert.equal(prefixAffinity.pickWorker([worker('a', 0, 0, { freeMemoryBytes: 1 })], keyed), -1);
  });
});
