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
  it('hashes a body in canonical form: key order does not count, values and tensor bytes do', async () => {
    const a = await requestHash({ inputs: [{ name: 'x', shape: [1, 2], data: [1, 2] }], outputs: [{ name: 'y' }] });
    const b = await requestHash({ outputs: [{ name: 'y' }], inputs: [{ data: [1, 2], shape: [1, 2], name: 'x' }] });
    assert.equal(a, b);
    assert.notEqual(
      a,
      await requestHash({ inputs: [{ name: 'x', shape: [1, 2], data: [2, 1] }], outputs: [{ name: 'y' }] }),
    );
    assert.equal(await requestHash({ a: 1, b: undefined }), await requestHash({ a: 1 }));
    assert.notEqual(await requestHash({ a: '1' }), await requestHash({ a: 1 }));
    // Binary tensors count by type and bytes: the same numbers as float32 and as float64 are different inputs.
    const f32 = await requestHash({ data: new Float32Array([0.5, 1.5]) });
    assert.equal(f32, await requestHash({ data: new Float32Array([0.5, 1.5]) }));
    assert.notEqual(f32, await requestHash({ data: new Float64Array([0.5, 1.5]) }));
    assert.notEqual(f32, await requestHash({ data: new Float32Array([0.5, 2.5]) }));
    assert.equal(await requestHash({ id: 'r1', x: 1 }, ['id']), await requestHash({ id: 'r2', x: 1 }, ['id']));
  });

  it('hashes image-sized tensors (digested off the event loop) by every byte, type and place', async () => {
    const image = new Float32Array(3 * 224 * 224).map((_, i) => Math.sin(i));
    const body = (data: ArrayBufferView, extra?: ArrayBufferView) => ({
      inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 3, 224, 224], data }, ...(extra ? [{ data: extra }] : [])],
    });
    const key = await requestHash(body(image));
    // The same bytes in another buffer, at another offset (as a view over a received body is), hash alike.
    const elsewhere = new Float32Array(new ArrayBuffer(image.byteLength + 8), 8, image.length);
    elsewhere.set(image);
    assert.equal(await requestHash(body(elsewhere)), key);
    for (const at of [0, image.length >> 1, image.length - 1]) {
      const changed = image.slice();
      changed[at] = changed[at]! + 1;
      assert.notEqual(await requestHash(body(changed)), key, `element ${at} changed`);
    }
    assert.notEqual(await requestHash(body(new Uint32Array(image.buffer))), key);
    assert.notEqual(await requestHash(body(image.subarray(1))), key);
    // Two large tensors: their order counts, and each one's digest lands where its bytes would.
    const other = image.map((v) => -v);
    const ab = await requestHash(body(image, other));
    assert.notEqual(ab, await requestHash(body(other, image)));
    assert.equal(ab, await requestHash(body(image.slice(), other.slice())));
    // A tensor in shared memory (which WebCrypto does not take) hashes as the same bytes in a buffer of their own.
    const shared = new Float32Array(new SharedArrayBuffer(image.byteLength));
    shared.set(image);
    assert.equal(await requestHash(body(shared)), key);
    shared[7] = shared[7]! + 1;
    assert.notEqual(await requestHash(body(shared)), key);
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
