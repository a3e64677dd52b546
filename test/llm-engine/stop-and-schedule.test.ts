import { strict as assert } from 'node:assert';
import { StopMatcher } from '@nucleus/core/internal/engine/llm/generation/stop-matcher';
import { GenerationScheduler, type WaitingSequence } from '@nucleus/core/internal/engine/llm/generation/scheduler';

/** Feeds pieces and returns what was let out, the stop found, and what was let out per piece. */
function run(stops: string[], pieces: string[]): { out: string; stop?: string; emitted: string[] } {
  const m = new StopMatcher(stops);
  const emitted: string[] = [];
  for (const p of pieces) {
    const r = m.push(p);
    emitted.push(r.text);
    if (r.stop !== undefined) return { out: emitted.join(''), stop: r.stop, emitted };
  }
  emitted.push(m.flush());
  return { out: emitted.join(''), emitted };
}

describe('StopMatcher', () => {
  it('finds a stop sequence split over several tokens and emits none of it', () => {
    const r = run(['END'], ['Hello ', 'wor', 'ld E', 'N', 'D and more']);
    assert.equal(r.out, 'Hello world ');
    assert.equal(r.stop, 'END');
    assert.deepEqual(r.emitted, ['Hello ', 'wor', 'ld ', '', '']);
  });

  it('holds back a possible start and releases it when the text goes elsewhere', () => {
    const r = run(['END'], ['a E', 'N', 'O', 'ugh']);
    assert.deepEqual(r.emitted, ['a ', '', 'ENO', 'ugh', '']);
    assert.equal(r.stop, undefined);
  });

  it('releases held text at the end when no stop completed', () => {
    assert.deepEqual(run(['</s>'], ['x <', '/s']).emitted, ['x ', '', '</s']);
  });

  it('handles overlapping prefixes (aab in aaab)', () => {
    const r = run(['aab'], ['a', 'a', 'a', 'b', 'c']);
    assert.equal(r.out, 'a');
    assert.equal(r.stop, 'aab');
  });

  it('takes the earliest of several stops, the longer one at the same place', () => {
    assert.equal(run(['two', 'one'], ['zero one two']).out, 'zero ');
    assert.equal(run(['one', 'one two'], ['zero one two']).stop, 'one two');
  });

  it('stops inside a piece and ignores everything after', () => {
    const m = new StopMatcher(['STOP']);
    assert.deepEqual(m.push('abcST'), { text: 'abc' });
    assert.deepEqual(m.push('OPdef'), { text: '', stop: 'STOP' });
    assert.deepEqual(m.push('more'), { text: '' });
    assert.equal(m.flush(), '');
  });

  it('passes everything through without stop sequences', () => {
    assert.deepEqual(run([], ['a', 'b']).emitted, ['a', 'b', '']);
    assert.deepEqual(run([''], ['a']).emitted, ['a', '']);
  });
});

describe('GenerationScheduler', () => {
  const seq = (id: number, priority: WaitingSequence['priority'], arrivedAt: number): WaitingSequence => ({
    id,
    priority,
    arrivedAt,
    order: id,
  });

  it('holds new arrivals for the batch window so they share a prefill, then admits them together', () => {
    const s = new GenerationScheduler({ maxRunning: 8, maxBatchSize: 8, batchWindowMs: 50, strategy: 'priority' });
    const waiting = [seq(1, 'normal', 0), seq(2, 'normal', 20)];
    assert.deepEqual(s.plan(waiting, 1, 10), { admit: [], wakeInMs: 40 });
    assert.deepEqual(
      s.plan(waiting, 3, 50).admit.map((w) => w.id),
      [1, 2],
    );
  });

  it('starts what waits at once on an idle engine, where there is no step to share', () => {
    const s = new GenerationScheduler({ maxRunning: 8, maxBatchSize: 8, batchWindowMs: 50, strategy: 'priority' });
    assert.deepEqual(
      s.plan([seq(1, 'normal', 0)], 0, 0.1).admit.map((w) => w.id),
      [1],
    );
    assert.deepEqual(
      s.plan([seq(1, 'normal', 0), seq(2, 'high', 0.2)], 0, 0.3).admit.map((w) => w.id),
      [2, 1],
    );
    assert.deepEqual(
      s.plan([seq(3, 'normal', 0)], 1, 0.1),
      { admit: [], wakeInMs: 49.9 },
      'once something runs, newcomers wait for the window',
    );
  });

  it('does not wait when the arrivals already fill the free slots', () => {
    const s = new GenerationScheduler({ maxRunning: 4, maxBatchSize: 32, batchWindowMs: 50, strategy: 'priority' });
    assert.deepEqual(
      s.plan([seq(1, 'normal', 0), seq(2, 'normal', 0)], 2, 1).admit.map((w) => w.id),
      [1, 2],
    );
    assert.deepEqual(s.plan([seq(1, 'normal', 0)], 4, 100), { admit: [] }, 'no free slot');
  });

  it('caps running sequences by maxRunning and one prefill by maxBatchSize', () => {
    const s = new GenerationScheduler({ maxRunning: 10, maxBatchSize: 3, batchWindowMs: 0, strategy: 'fifo' });
    const waiting = [1, 2, 3, 4, 5].map((i) => seq(i, 'normal', 0));
    assert.equal(s.capacity, 3);
    assert.deepEqual(
      s.plan(waiting, 0, 0).admit.map((w) => w.id),
      [1, 2, 3],
    );
    s.update({ maxBatchSize: 32, maxRunning: 4 });
    assert.deepEqual(
      s.plan(waiting, 2, 0).admit.map((w) => w.id),
      [1, 2],
    );
  });

  it('orders by priority then arrival, or by arrival alone with fifo', () => {
    const waiting = [seq(1, 'low', 0), seq(2, 'normal', 1), seq(3, 'high', 2), seq(4, 'normal', 3)];
    const priority = new GenerationScheduler({
      maxRunning: 2,
      maxBatchSize: 8,
      batchWindowMs: 0,
      strategy: 'priority',
    });
    assert.deepEqual(
      priority.plan(waiting, 0, 10).admit.map((w) => w.id),
      [3, 2],
    );
    const fifo = new GenerationScheduler({ maxRunning: 2, maxBatchSize: 8, batchWindowMs: 0, strategy: 'fifo' });
    assert.deepEqual(
      fifo.plan(waiting, 0, 10).admit.map((w) => w.id),
      [1, 2],
    );
  });
});
