import { strict as assert } from 'node:assert';
import type { CachePolicy } from '@nucleus/sdk';
import { loadCachePolicy } from '@nucleus/sdk';
import { createLruPolicy, LRU_POLICY, LruPolicy } from '@nucleus/plugin-cache-lru';
import type { KvLayout } from '@nucleus/core/internal/engine/llm/generation/kv-batch';
import { blockElements } from '@nucleus/core/internal/engine/llm/prefix-cache/kv-blocks';
import { PrefixCache } from '@nucleus/core/internal/engine/llm/prefix-cache/prefix-cache';

const LAYOUT: KvLayout = { numLayers: 2, numKvHeads: 2, headDim: 4, dtype: 'float32' };
const B = 4;

/** A block whose values say which tokens it holds, so a test can tell blocks apart. */
const blockOf = (ids: readonly number[]) => (first: number) =>
  Float32Array.from({ length: blockElements(LAYOUT, B) }, (_, i) => ids[first + (i % B)]! * 1000 + i);

const seq = (start: number, n: number) => Array.from({ length: n }, (_, i) => start + i);

describe('PrefixCache', () => {
  it('serves the longest cached start of a prompt, block by block, and only whole blocks', () => {
    const cache = new PrefixCache({ layout: LAYOUT, blockTokens: B, maxBytes: 1 << 20, policy: new LruPolicy() });
    const a = seq(1, 14);
    assert.equal(cache.insert(a, a.length, blockOf(a)), 3, '14 tokens hold 3 whole blocks of 4');
    const b = [...a.slice(0, 9), 99, 98, 97, 96];
    const m = cache.match(b);
    assert.equal(m.tokens, 8, 'the third block differs at its second token');
    assert.deepEqual(Array.from(m.blocks[1]!), Array.from(blockOf(a)(4)));
    assert.equal(cache.match(a, 11).tokens, 8, 'maxTokens caps the match');
    assert.equal(cache.match([2, ...a.slice(1)]).tokens, 0, 'a block is keyed by everything before it');
    assert.equal(cache.peek(a), 12);
    assert.equal(cache.insert(b, b.length, blockOf(b)), 1, 'the shared blocks are not stored twice');
    assert.equal(cache.stats.entries, 4);
  });

  it('never holds more than its limit; LRU drops leaves before the prefixes they extend', () => {
    const policy = new LruPolicy();
    const cache = new PrefixCache({ layout: LAYOUT, blockTokens: B, maxBytes: 0, policy });
    cache.resize(6 * cache.bytesPerBlock);
    const sys = seq(1, 8);
    const x = [...sys, ...seq(100, 8)];
    const y = [...sys, ...seq(200, 8)];
    cache.insert(x, x.length, blockOf(x));
    cache.insert(y, y.length, blockOf(y));
    assert.equal(cache.stats.entries, 6, 'the second prompt shares two blocks');
    assert.equal(cache.stats.evictions, 0);
    assert.ok(cache.stats.bytes <= cache.stats.capacityBytes);
    // A third prompt on the same system prompt needs two blocks: the leaves of x go first, x's shared start stays.
    const z = [...sys, ...seq(300, 8)];
    cache.insert(z, z.length, blockOf(z));
    assert.ok(cache.stats.bytes <= cache.stats.capacityBytes);
    assert.equal(cache.stats.evictions, 2);
    assert.equal(cache.match(x).tokens, 8, 'x lost its own blocks, kept the shared ones');
    assert.equal(cache.match(y).tokens, 16);
    assert.equal(cache.match(z).tokens, 16);
    for (let i = 0; i < 20; i++) {
      const p = seq(1000 * (i + 1), 12);
      cache.insert(p, p.length, blockOf(p));
      assert.ok(cache.stats.bytes <= cache.stats.capacityBytes, `limit held after insert ${i}`);
    }
    assert.equal(cache.stats.entries, 6);
    cache.resize(2 * cache.bytesPerBlock);
    assert.equal(cache.stats.entries, 2);
    assert.deepEqual(policy.keys().length, 2, 'the policy was told of every removal');
  });

  it('drops a block together with the blocks that extend it, and never a block the insert builds on', () => {
    // A policy that always names the oldest insert, whatever was used since.
    const order: string[] = [];
    const fifo: CachePolicy = {
      onInsert: (key) => void order.push(key),
      onAccess: () => undefined,
      onRemove: (key) => void order.splice(order.indexOf(key) >>> 0, order.includes(key) ? 1 : 0),
      victim: () => order[0],
    };
    const cache = new PrefixCache({ layout: LAYOUT, blockTokens: B, maxBytes: 0, policy: fifo });
    cache.resize(4 * cache.bytesPerBlock);
    const a = seq(1, 12);
    const b = seq(50, 8);
    cache.insert(a, a.length, blockOf(a));
    cache.insert(b, b.length, blockOf(b));
    assert.equal(cache.match(a).tokens, 0, "a's first block was named, and its two later blocks went with it");
    assert.equal(cache.stats.evictions, 3);
    assert.equal(cache.match(b).tokens, 8);
    // Extending b: the policy names b's first block, which the new block needs as its parent, so nothing is added.
    const longer = [...b, ...seq(80, 12)];
    const before = cache.stats;
    assert.equal(cache.insert(longer, longer.length, blockOf(longer)), 2, 'two blocks fit beside b');
    assert.equal(cache.stats.entries, 4);
    assert.equal(cache.insert(longer, longer.length, blockOf(longer)), 0, 'the third would evict the chain it extends');
    assert.equal(cache.stats.evictions, before.evictions);
    assert.ok(cache.stats.bytes <= cache.stats.capacityBytes);
  });

  it("releases a conversation's blocks except those another conversation or an untagged request uses", () => {
    const cache = new PrefixCache({ layout: LAYOUT, blockTokens: B, maxBytes: 1 << 20, policy: new LruPolicy() });
    const sys = seq(1, 8);
    const c1 = [...sys, ...seq(100, 8)];
    const c2 = [...sys, ...seq(200, 8)];
    const shared = seq(500, 8);
    cache.insert(c1, c1.length, blockOf(c1), 'c1');
    cache.insert(c2, c2.length, blockOf(c2), 'c2');
    cache.insert(shared, shared.length, blockOf(shared), 'c1');
    cache.match(shared, shared.length);
    const freed = cache.releaseConversation('c1');
    assert.equal(freed, 2 * cache.bytesPerBlock, "c1's own two blocks went");
    assert.equal(cache.match(c1).tokens, 8, 'the system prompt c2 shares stays');
    assert.equal(cache.match(shared).tokens, 8, 'a block an untagged request used stays');
    assert.equal(cache.stats.released, 2);
    cache.releaseConversation('c2');
    assert.equal(cache.match(c2).tokens, 8, 'the system prompt was matched by an untagged lookup above, so it stays');
  });

  it('serializes to bytes that restore the same state: blocks, owners, counters and recency', () => {
    const policy = new LruPolicy();
    const cache = new PrefixCache({ layout: LAYOUT, blockTokens: B, maxBytes: 0, policy });
    cache.resize(6 * cache.bytesPerBlock);
    const prompts = [seq(1, 10), [...seq(1, 8), 70, 71, 72, 73], seq(40, 9), seq(90, 4)];
    prompts.forEach((p, i) => cache.insert(p, p.length, blockOf(p), i % 2 ? 'conv' : undefined));
    cache.match(prompts[2]!);
    cache.match(seq(7, 8));
    const bytes = cache.serialize();
    const restoredPolicy = createLruPolicy() as LruPolicy;
    const restored = PrefixCache.deserialize(bytes, restoredPolicy, LAYOUT);
    assert.deepEqual(restored.stats, cache.stats);
    assert.deepEqual(
      Buffer.from(restored.serialize()),
      Buffer.from(bytes),
      'serializing the restored cache gives the same bytes',
    );
    assert.deepEqual(restoredPolicy.keys(), policy.keys(), 'the policy was rebuilt in the same recency order');
    for (const p of prompts) {
      const [x, y] = [cache.match(p), restored.match(p)];
      assert.equal(y.tokens, x.tokens);
      assert.deepEqual(
        y.blocks.map((b) => Array.from(b)),
        x.blocks.map((b) => Array.from(b)),
      );
    }
    // Both evict the same blocks next, and release the same conversation.
    const more = seq(300, 8);
    cache.insert(more, more.length, blockOf(more));
    restored.insert(more, more.length, blockOf(more));
    assert.deepEqual(Buffer.from(restored.serialize()), Buffer.from(cache.serialize()));
    assert.equal(restored.releaseConversation('conv'), cache.releaseConversation('conv'));
    assert.throws(() => PrefixCache.deserialize(bytes.subarray(0, bytes.length - 3), createLruPolicy()), /truncated/);
    assert.throws(
      () => PrefixCache.deserialize(bytes, createLruPolicy(), { ...LAYOUT, headDim: 8 }),
      /another KV layout/,
    );
    assert.throws(() => PrefixCache.deserialize(new Uint8Array(16), createLruPolicy()), /bad magic/);
  });
});

describe('cache policy specs on the main thread', () => {
  it('makes a fresh instance of a contributed policy from its spec, as a worker does', async () => {
    const [one, two] = await Promise.all([loadCachePolicy(LRU_POLICY), loadCachePolicy(LRU_POLICY)]);
    one.onInsert('a', 1);
    one.onInsert('b', 1);
    one.onAccess('a');
    assert.equal(one.victim(), 'b');
    assert.equal(two.victim(), undefined, 'each cache gets its own instance');
  });

  it('names the policy whose module makes none', async () => {
    await assert.rejects(
      loadCachePolicy({ name: 'broken', module: 'data:text/javascript,export default () => ({ victim() {} })' }),
      /the 'broken' cache policy from data:text\/javascript.* has no onInsert\(\)/,
    );
  });
});
