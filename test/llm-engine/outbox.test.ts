import { strict as assert } from 'node:assert';
import type { WireGenerationEvent } from '@nucleus/core/internal/engine/llm/generation/generation-messages';
import { Outbox } from '@nucleus/core/internal/engine/llm/generation/outbox';

describe('Outbox (token groups a generation thread posts)', () => {
  it('holds tokens for the interval, but posts a first token and a finish at once', () => {
    let now = 0;
    const posts: WireGenerationEvent[][] = [];
    const outbox = new Outbox(
      (events) => posts.push(events),
      10,
      () => now,
    );
    const token = (tokenId: number): WireGenerationEvent => ({
      kind: 'token',
      id: 1,
      index: 0,
      tokenId,
      text: 'x',
      sampledAt: now,
    });
    outbox.flush(true);
    now = 1;
    outbox.push(token(1), true);
    outbox.flushIfDue();
    assert.equal(posts.length, 2, 'the first token went out without waiting out the interval');
    now = 2;
    outbox.push(token(2));
    outbox.flushIfDue();
    now = 5;
    outbox.push(token(3));
    outbox.flushIfDue();
    assert.equal(posts.length, 2, 'later tokens wait for the interval');
    now = 11;
    outbox.flushIfDue();
    assert.deepEqual(
      posts[2]!.map((e) => (e.kind === 'token' ? e.tokenId : -1)),
      [2, 3],
    );
    now = 12;
    outbox.push({ kind: 'finish', id: 1, index: 0, reason: 'stop', text: '', completionTokens: 3 });
    outbox.flushIfDue();
    assert.equal(posts.length, 4);
  });

  it('posts every iteration once an iteration takes as long as the interval, so no token waits out another step', () => {
    let now = 0;
    const posts: WireGenerationEvent[][] = [];
    const outbox = new Outbox(
      (events) => posts.push(events),
      4,
      () => now,
    );
    const token = (tokenId: number): WireGenerationEvent => ({
      kind: 'token',
      id: 1,
      index: 0,
      tokenId,
      text: 'x',
      sampledAt: now,
    });
    // Fast steps (1 ms): tokens are grouped, none held much past the interval.
    for (let step = 1; step <= 8; step++) {
      now = step;
      outbox.push(token(step));
      outbox.flushIfDue();
    }
    assert.deepEqual(
      posts.map((p) => p.map((e) => (e.kind === 'token' ? e.tokenId : -1))),
      [
        [1, 2, 3, 4],
        [5, 6, 7, 8],
      ],
    );
    // Slow steps (6 ms): holding a token would keep it for another 6 ms, so each step's tokens leave at once.
    for (let step = 1; step <= 3; step++) {
      now += 6;
      outbox.push(token(100 + step));
      outbox.flushIfDue();
      assert.equal(posts.length, 2 + step, `step ${step} posted`);
    }
  });
});
