import { strict as assert } from 'node:assert';
import { ReplicaCounters } from '@nucleus/core/internal/engine/llm/generation/replica-counters';

describe("ReplicaCounters (a model's counters summed over its replicas)", () => {
  it('sums the replicas and never goes down when a replica restarts or is retired', () => {
    const c = new ReplicaCounters(['splits', 'failedAlone'] as const);
    assert.deepEqual(c.totals([]), { splits: 0, failedAlone: 0 });
    c.report(0, 0, { splits: 2, failedAlone: 1 });
    c.report(1, 0, { splits: 3, failedAlone: 0 });
    assert.deepEqual(c.totals([0, 1]), { splits: 5, failedAlone: 1 });
    // Replica 0's new process counts from zero: what its old one counted stays, and its new counts add to it.
    c.report(0, 1, { splits: 4, failedAlone: 0 });
    assert.deepEqual(c.totals([0, 1]), { splits: 2 + 4 + 3, failedAlone: 1 });
    // A report without the new incarnation seen whose counters went down is a restart too.
    c.report(1, 0, { splits: 1, failedAlone: 0 });
    assert.deepEqual(c.totals([0, 1]), { splits: 2 + 4 + 3 + 1, failedAlone: 1 });
    // Counting on in one incarnation adds only what is new.
    c.report(1, 0, { splits: 2, failedAlone: 0 });
    assert.deepEqual(c.totals([0, 1]), { splits: 11, failedAlone: 1 });
    // Replica 1 retired: its counts stay in the totals, once.
    assert.deepEqual(c.totals([0]), { splits: 11, failedAlone: 1 });
    assert.deepEqual(c.totals([0]), { splits: 11, failedAlone: 1 });
    // A new replica under a new id adds its own.
    c.report(2, 0, { splits: 1, failedAlone: 1 });
    assert.deepEqual(c.totals([0, 2]), { splits: 12, failedAlone: 2 });
  });
});
