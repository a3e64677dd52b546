import assert from 'node:assert/strict';
import { createLruPolicy, LRU_POLICY, LruPolicy } from '@nucleus/plugin-cache-lru';

describe('cache-lru: least recently used first', () => {
  it('evicts the key used longest ago; a use or a re-insert makes a key the newest', () => {
    const lru = new LruPolicy();
    for (const k of ['a', 'b', 'c']) lru.onInsert(k, 1);
    assert.equal(lru.victim(), 'a');
    lru.onAccess('a');
    assert.deepEqual(lru.keys(), ['b', 'c', 'a']);
    lru.onInsert('b', 2);
    assert.deepEqual(lru.keys(), ['c', 'a', 'b']);
    lru.onRemove('c');
    assert.equal(lru.victim(), 'a');
    lru.onAccess('gone');
    assert.deepEqual(lru.keys(), ['a', 'b']);
  });

  it('has nothing to evict when empty, and each factory call is a fresh policy', () => {
    const one = createLruPolicy({});
    one.onInsert('x', 1);
    assert.equal(createLruPolicy({}).victim(), undefined);
    assert.equal(one.victim(), 'x');
    assert.equal(LRU_POLICY.name, 'lru');
    assert.match(LRU_POLICY.module, /^file:.*lru-policy\.js$/);
  });
});
