import { strict as assert } from 'node:assert';
import { ReplicaSet, type ReplicaSetHooks } from '@nucleus/core/internal/engine/workers/replica-set';

// A replica reduced to its lifecycle: it opens (or fails to), holds some work, and closes.
interface Replica {
  id: number;
  state: 'new' | 'open' | 'closed';
  work: number;
  fail: boolean;
  opening: Promise<void>;
}

// Replicas whose opening and work the test controls; `opened` resolves the pending opens.
function fixture(size: number, hooks: ReplicaSetHooks<Replica> = {}) {
  const made: Replica[] = [];
  const pendingOpens: (() => void)[] = [];
  let failNext = 0;
  let holdOpens = false;
  const set = new ReplicaSet<Replica, number>(
    size,
    {
      create: () => {
        const r: Replica = { id: made.length, state: 'new', work: 0, fail: failNext > 0, opening: Promise.resolve() };
        if (failNext > 0) failNext--;
        made.push(r);
        return r;
      },
      start: async (r) => {
        if (holdOpens) await new Promise<void>((resolve) => pendingOpens.push(resolve));
        if (r.fail) throw new Error(`replica ${r.id} cannot open`);
        r.state = 'open';
        return r.id;
      },
      idle: async (r) => {
        while (r.work > 0) await new Promise((resolve) => setTimeout(resolve, 5));
      },
      close: async (r) => {
        r.state = 'closed';
      },
    },
    hooks,
  );
  return {
    set,
    made,
    failNextOpens: (n: number) => void (failNext = n),
    holdOpens: (hold: boolean) => void (holdOpens = hold),
    releaseOpens: () => pendingOpens.splice(0).forEach((f) => f()),
    ids: () => set.active.map((r) => r.id),
  };
}

const tick = () => new Promise((resolve) => setTimeout(resolve, 20));

describe('ReplicaSet', () => {
  it('opens every replica at start and answers what the first one did', async () => {
    const f = fixture(3);
    assert.equal(await f.set.start(), 0);
    assert.deepEqual(
      f.made.map((r) => r.state),
      ['open', 'open', 'open'],
    );
    assert.equal(f.set.closed, false);
  });

  it('closes the rest and rethrows when one replica cannot open at start', async () => {
    let closing = 0;
    const g = fixture(3, { onClose: () => closing++ });
    g.made[1]!.fail = true;
    await assert.rejects(g.set.start(), /replica 1 cannot open/);
    assert.deepEqual(
      g.made.map((r) => r.state),
      ['closed', 'closed', 'closed'],
    );
    assert.equal(g.set.closed, true);
    assert.equal(closing, 1);
    // A closed set takes no more resizes.
    await g.set.resize(5);
    assert.equal(g.made.length, 3);
  });

  it('grows: new replicas take work once open, and the hook hears of it', async () => {
    let added = 0;
    const f = fixture(1, { onAdded: () => added++ });
    await f.set.start();
    await f.set.resize(3);
    assert.deepEqual(f.ids(), [0, 1, 2]);
    assert.ok(f.set.active.every((r) => r.state === 'open'));
    assert.equal(added, 1);
  });

  it('records a resize before start and applies nothing until then', async () => {
    const f = fixture(2);
    await f.set.resize(4);
    assert.equal(f.made.length, 2);
  });

  it('closes a replica that fails to open on grow and does not keep it', async () => {
    const failed: number[] = [];
    const removed: number[] = [];
    const f = fixture(1, { onOpenFailed: (r) => failed.push(r.id), onRemoved: (r) => removed.push(r.id) });
    await f.set.start();
    f.failNextOpens(1);
    await f.set.resize(3);
    assert.deepEqual(failed, [1]);
    assert.deepEqual(removed, [1]);
    assert.equal(f.made[1]!.state, 'closed');
    // The one that opened is kept; the set stays smaller until the next resize, which tries again.
    assert.deepEqual(f.ids(), [0, 2]);
    await f.set.resize(3);
    assert.deepEqual(f.ids(), [0, 2, 3]);
  });

  it('tries a replica that cannot open once per resize, not for ever', async () => {
    const f = fixture(1);
    await f.set.start();
    f.failNextOpens(1000);
    await f.set.resize(3);
    assert.deepEqual(f.ids(), [0]);
    assert.equal(f.made.length, 3, 'two replicas were tried, once each');
    await f.set.resize(2);
    assert.equal(f.made.length, 4);
  });

  it('shrinks: a retired replica takes no new work and closes once its work is done', async () => {
    const retiring: number[][] = [];
    const removed: number[] = [];
    const f = fixture(3, {
      onRetiring: (rs) => retiring.push(rs.map((r) => r.id)),
      onRemoved: (r) => removed.push(r.id),
    });
    await f.set.start();
    f.made[2]!.work = 1;
    const shrinking = f.set.resize(1);
    await tick();
    assert.deepEqual(f.ids(), [0]);
    assert.deepEqual(retiring, [[1, 2]]);
    // The idle one has closed; the busy one is still retiring, open, until its work ends.
    assert.equal(f.made[1]!.state, 'closed');
    assert.equal(f.made[2]!.state, 'open');
    assert.deepEqual(
      [...f.set.retiring].map((r) => r.id),
      [2],
    );
    assert.deepEqual(
      f.set.all.map((r) => r.id),
      [0, 2],
    );
    f.made[2]!.work = 0;
    await shrinking;
    assert.equal(f.made[2]!.state, 'closed');
    assert.equal(f.set.retiring.size, 0);
    assert.deepEqual(removed.sort(), [1, 2]);
  });

  it('converges to the last target when resized during a resize', async () => {
    const f = fixture(1);
    await f.set.start();
    f.holdOpens(true);
    const growing = f.set.resize(4);
    await tick();
    // Three replicas are opening; meanwhile the target moves twice.
    void f.set.resize(5);
    const last = f.set.resize(2);
    f.holdOpens(false);
    f.releaseOpens();
    await Promise.all([growing, last]);
    assert.equal(f.set.active.length, 2);
    assert.equal(f.set.retiring.size, 0);
    assert.equal(f.made.filter((r) => r.state === 'open').length, 2);
  });

  it('closes every replica, retiring ones included, with the close it is given', async () => {
    const f = fixture(2);
    await f.set.start();
    f.made[1]!.work = 1;
    void f.set.resize(1);
    await tick();
    const closedBy: number[] = [];
    await f.set.close(async (r) => void closedBy.push(r.id));
    assert.deepEqual(closedBy, [0, 1]);
    assert.equal(f.set.closed, true);
    f.made[1]!.work = 0;
  });
});
