import { strict as assert } from 'node:assert';
import type { WireGenerationEvent } from '@nucleus/core/internal/engine/llm/generation/generation-messages';
import { Outbox } from '@nucleus/core/internal/engine/llm/generation/outbox';

describe('Outbox (token groups a generation thread posts)', () => {
  it('holds tokens for the interval, but posts a first token and a finish at once', () => {
    let now = 0;
    const posts: WireGenerationEvent[][] = [];
    const outbox = new Outbox((events) => posts.push(events), 10, () => now);
    const token = (tokenId: number): WireGenerationEvent => ({ kind: 'token', id: 1, index: 0, tokenId, text: 'x', sampledAt: now });
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
    assert.deepEqual(posts[2]!.map((e) => (e.kind === 'token' ? e.tokenId : -1)), [2, 3]);
    now = 12;
    outbox.push({ kind: 'finish', id: 1, index: 0, reason: 'stop', text: '', completionTokens: 3 });
    outbox.flushIfDue();
    assert.equal(posts.length, 4);
  });
});
