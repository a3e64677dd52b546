import assert from 'node:assert/strict';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { cacheability, PredictionCache, requestHash } from '@nucleus/plugin-prediction-cache';
import { type CachePolicy, loadCachePolicy } from '@nucleus/sdk';

// The LRU policy as a user runs it: cache-lru's module, loaded the way the plugin loads a contributed policy.
const LRU_MODULE = pathToFileURL(
  join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'cache-lru', 'dist', 'lru-policy.js'),
).href;
const lru = (): Promise<CachePolicy> => loadCachePolicy({ name: 'lru', module: LRU_MODULE });

describe('prediction-cache: keys, bounds and lifetimes', () => {
  it('hashes a body in canonical form: key order does not count, values and tensor bytes do', () => {
    const a = requestHash({ inputs: [{ name: 'x', shape: [1, 2], data: [1, 2] }], outputs: [{ name: 'y' }] });
    const b = requestHash({ outputs: [{ name: 'y' }], inputs: [{ data: [1, 2], shape: [1, 2], name: 'x' }] });
    assert.equal(a, b);
    assert.notEqual(a, requestHash({ inputs: [{ name: 'x', shape: [1, 2], data: [2, 1] }], outputs: [{ name: 'y' }] }));
    assert.equal(requestHash({ a: 1, b: undefined }), requestHash({ a: 1 }));
    assert.notEqual(requestHash({ a: '1' }), requestHash({ a: 1 }));
    // Binary tensors count by type and bytes: the same numbers as float32 and as float64 are different inputs.
    const f32 = requestHash({ data: new Float32Array([0.5, 1.5]) });
    assert.equal(f32, requestHash({ data: new Float32Array([0.5, 1.5]) }));
    assert.notEqual(f32, requestHash({ data: new Float64Array([0.5, 1.5]) }));
    assert.notEqual(f32, requestHash({ data: new Float32Array([0.5, 2.5]) }));
    assert.equal(requestHash({ id: 'r1', x: 1 }, ['id']), requestHash({ id: 'r2', x: 1 }, ['id']));
  });

  it('caches tensor requests always, generations only when greedy or seeded and not streamed', () => {
    assert.deepEqual(cacheability('/v2/models/m/infer', {}), { cacheable: true, kind: 'tensor', ignore: ['id'] });
    assert.equal(cacheability('/v2/models/m/versions/2/infer', {})?.cacheable, true);
    assert.equal(cacheability('/infer', {})?.cacheable, true);
    assert.equal(cacheability('/v1/embeddings', {})?.cacheable, true);
    assert.equal(cacheability('/v1/chat/completions', { temperature: 0 })?.cacheable, true);
    assert.equal(cacheability('/v1/completions', { temperature: 0.8, seed: 7 })?.cacheable, true);
    assert.equal(cacheability('/v2/models/m/generate', { parameters: { temperature: 0 } })?.cacheable, true);
    assert.deepEqual(cacheability('/v1/chat/completions', { temperature: 0.8 }), {
      cacheable: false,
      reason: 'sampled without a seed',
    });
    assert.equal(cacheability('/v1/chat/completions', {})?.cacheable, false, 'the default temperature samples');
    assert.equal(cacheability('/v1/completions', { temperature: 0, stream: true })?.cacheable, false);
    assert.equal(cacheability('/batch_infer', {}), undefined);
  });

  it('evicts what the policy names to stay within its bytes, counting evictions per model', async () => {
    const cache = new PredictionCache(300, await lru());
    for (const k of ['a', 'b', 'c']) assert.ok(cache.store('m', k, { k }, 100, 60_000, cache.epoch('m')));
    assert.equal(cache.get('m', 'a').hit, true); // now b is the least recently used
    assert.ok(cache.store('n', 'd', { k: 'd' }, 100, 60_000, cache.epoch('n')));
    assert.deepEqual(
      ['a', 'b', 'c'].map((k) => cache.get('m', k).hit),
      [true, false, true],
    );
    assert.equal(cache.bytes, 300);
    assert.deepEqual(cache.stats('m'), { hits: 3, misses: 1, evictions: 1, bytes: 200, entries: 2 });
    assert.equal(cache.store('m', 'huge', {}, 301, 60_000, cache.epoch('m')), false, 'larger than the cache');
  });

  it('serves an answer until its time to live runs out', async () => {
    let now = 1000;
    const cache = new PredictionCache(1000, await lru(), () => now);
    cache.store('m', 'k', { v: 1 }, 10, 500, 0);
    now += 499;
    assert.deepEqual(cache.get('m', 'k'), { hit: true, body: { v: 1 } });
    now += 1;
    assert.deepEqual(cache.get('m', 'k'), { hit: false });
    assert.equal(cache.size, 0);
    assert.equal(cache.store('m', 'k', { v: 1 }, 10, 0, 0), false, 'a ttl of 0 stores nothing');
  });

  it('drops a model’s answers on invalidation, and refuses answers computed before it', async () => {
    const cache = new PredictionCache(1000, await lru());
    const before = cache.epoch('m');
    cache.store('m', 'k', { v: 1 }, 10, 60_000, before);
    cache.store('other', 'o', { v: 2 }, 10, 60_000, cache.epoch('other'));
    assert.equal(cache.invalidate('m'), 1);
    assert.equal(cache.get('m', 'k').hit, false);
    assert.equal(cache.get('other', 'o').hit, true);
    assert.equal(cache.store('m', 'k', { v: 1 }, 10, 60_000, before), false, 'computed by the old version');
    assert.equal(cache.store('m', 'k', { v: 1 }, 10, 60_000, cache.epoch('m')), true);
  });
});
