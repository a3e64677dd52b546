import assert from 'node:assert/strict';
import { fifo, priorityWithAging } from '@nucleus/plugin-scheduler';
import type { Schedulable } from '@nucleus/sdk';

const req = (id: string, priority: Schedulable['priority'], enqueuedAt: number): Schedulable => ({
  id,
  priority,
  enqueuedAt,
  cost: 1,
});
const ids = (waiting: Schedulable[], order: number[]) => order.map((i) => waiting[i]!.id);

describe('scheduler: queue order', () => {
  it('fifo takes the oldest first, and keeps arrival order for requests admitted in one millisecond', () => {
    const waiting = [req('c', 'high', 30), req('a', 'low', 10), req('b1', 'normal', 20), req('b2', 'normal', 20)];
    assert.deepEqual(ids(waiting, fifo.order(waiting, 100)), ['a', 'b1', 'b2', 'c']);
    assert.deepEqual(fifo.order([], 0), []);
    assert.equal(fifo.name, 'fifo');
  });

  it('priority puts high before normal before low when none has waited long', () => {
    const strategy = priorityWithAging(1000);
    const waiting = [req('low', 'low', 0), req('normal', 'normal', 0), req('high', 'high', 0)];
    assert.deepEqual(ids(waiting, strategy.order(waiting, 0)), ['high', 'normal', 'low']);
    assert.equal(strategy.name, 'priority');
  });

  it('within one class the older request goes first', () => {
    const waiting = [req('young', 'normal', 50), req('old', 'normal', 10)];
    assert.deepEqual(ids(waiting, priorityWithAging(1000).order(waiting, 60)), ['old', 'young']);
  });

  it('aging lifts a waiting low request over a fresh high one after about 2 × agingMs', () => {
    const strategy = priorityWithAging(100);
    const before = [req('low', 'low', 0), req('high', 'high', 199)];
    assert.deepEqual(ids(before, strategy.order(before, 199)), ['high', 'low']);
    const after = [req('low', 'low', 0), req('high', 'high', 201)];
    assert.deepEqual(ids(after, strategy.order(after, 201)), ['low', 'high']);
  });

  it('a clock behind a request’s admission time gives it no negative age', () => {
    const waiting = [req('future-high', 'high', 10_000), req('normal', 'normal', 0)];
    assert.deepEqual(ids(waiting, priorityWithAging(1000).order(waiting, 0)), ['future-high', 'normal']);
  });
});
