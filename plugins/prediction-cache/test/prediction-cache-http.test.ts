import assert from 'node:assert/strict';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startTestKernel, type TestKernel, type TestResponse } from '@nucleus/sdk/testing';

const PLUGINS = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const plugin = (id: string): string => join(PLUGINS, id);
const ADMIN = 'admin-key-prediction-cache';
const HEADER = 'x-prediction-cache';

/** A server with the APIs, the lifecycle routes, the LRU policy, metrics and the prediction cache. */
function start(config: Record<string, unknown> = {}): Promise<TestKernel> {
  return startTestKernel({
    plugins: ['api-kserve', 'api-openai', 'model-lifecycle', 'cache-lru', 'metrics', 'prediction-cache'].map(plugin),
    env: { NUCLEUS_ADMIN_KEY: ADMIN },
    config: { 'scheduler.batchWindowMs': 2, ...config },
  });
}

const auth = { authorization: `Bearer ${ADMIN}` };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function infer(kit: TestKernel, data: number[], headers: Record<string, string> = {}, extra: object = {}) {
  return kit.request('/v2/models/mlp-classifier/infer', {
    body: { inputs: [{ name: 'input', shape: [1, 4], datatype: 'FP32', data }], ...extra },
    headers: { ...auth, ...headers },
  });
}

const verdict = (res: TestResponse): string | null => res.headers.get(HEADER);

/** The counter `cache_<what>_total` of the prediction cache for `model`, from /metrics. */
async function counter(kit: TestKernel, what: string, model: string): Promise<number> {
  const text = (await kit.request('/metrics')).body as string;
  const line = text
    .split('\n')
    .find(
      (l) =>
        l.startsWith(`nucleus_cache_${what}_total{`) &&
        l.includes('cache="prediction"') &&
        l.includes(`model_name="${model}"`),
    );
  return line ? Number(line.split(' ').at(-1)) : 0;
}

describe('prediction-cache over HTTP: repeated deterministic requests are answered from memory', () => {
  let kit: TestKernel;
  before(async () => {
    kit = await start({ 'plugin.prediction-cache.models': { 'multi-io': { ttlMs: 150 } } });
  });
  after(() => kit?.stop());

  it('answers a repeated KServe v2 request from the cache, whatever its key order and id', async () => {
    const first = await infer(kit, [0.1, 0.2, 0.3, 0.4], {}, { id: 'one' });
    assert.equal(first.status, 200);
    assert.equal(verdict(first), 'MISS');
    const again = await kit.request('/v2/models/mlp-classifier/infer', {
      body: { id: 'two', inputs: [{ data: [0.1, 0.2, 0.3, 0.4], datatype: 'FP32', shape: [1, 4], name: 'input' }] },
      headers: auth,
    });
    assert.equal(verdict(again), 'HIT');
    const { id: firstId, ...firstRest } = first.body as Record<string, unknown>;
    const { id: againId, ...againRest } = again.body as Record<string, unknown>;
    assert.deepEqual([firstId, againId], ['one', 'two'], 'a hit carries its own request id');
    assert.deepEqual(againRest, firstRest);
    assert.equal(verdict(await infer(kit, [0.4, 0.3, 0.2, 0.1])), 'MISS', 'other inputs are another entry');
    assert.ok((await counter(kit, 'hits', 'mlp-classifier')) >= 1);
    assert.ok((await counter(kit, 'misses', 'mlp-classifier')) >= 2);
  });

  it('caches the native /infer too, and leaves routes it does not know alone', async () => {
    const body = { model: 'mlp-classifier', inputs: { input: [[1, 2, 3, 4]] } };
    const first = await kit.request('/infer', { body, headers: auth });
    assert.deepEqual([first.status, verdict(first)], [200, 'MISS']);
    const again = await kit.request('/infer', { body, headers: auth });
    assert.equal(verdict(again), 'HIT');
    assert.deepEqual(again.body, first.body);
    const batch = await kit.request('/batch_infer', { body: { requests: [body] }, headers: auth });
    assert.equal(verdict(batch), null);
  });

  it('lets Cache-Control: no-cache run the model (and keep its answer), and no-store keep nothing', async () => {
    const data = [0.5, 0.6, 0.7, 0.8];
    assert.equal(verdict(await infer(kit, data)), 'MISS');
    assert.equal(verdict(await infer(kit, data, { 'cache-control': 'no-cache' })), 'BYPASS');
    assert.equal(verdict(await infer(kit, data)), 'HIT');
    const fresh = [0.9, 0.9, 0.9, 0.1];
    assert.equal(verdict(await infer(kit, fresh, { 'cache-control': 'no-store' })), 'MISS');
    assert.equal(verdict(await infer(kit, fresh)), 'MISS', 'the no-store answer was not kept');
    assert.equal(verdict(await infer(kit, fresh)), 'HIT');
  });

  it('misses once an answer’s time to live (here a per-model override) has run out', async () => {
    const body = {
      inputs: [
        { name: 'features', shape: [1, 6], datatype: 'FP32', data: [1, 2, 3, 4, 5, 6] },
        { name: 'category', shape: [1], datatype: 'INT64', data: [2] },
      ],
    };
    const multi = () => kit.request('/v2/models/multi-io/infer', { body, headers: auth });
    const first = await multi();
    assert.equal(first.status, 200, JSON.stringify(first.body));
    assert.equal(verdict(first), 'MISS');
    assert.equal(verdict(await multi()), 'HIT');
    const mlp = [0.11, 0.22, 0.33, 0.44];
    assert.equal(verdict(await infer(kit, mlp)), 'MISS');
    await sleep(300);
    assert.equal(verdict(await multi()), 'MISS', 'multi-io keeps answers 150 ms');
    assert.equal(verdict(await infer(kit, mlp)), 'HIT', 'mlp-classifier keeps the default 5 minutes');
  });

  it('drops a model’s answers when it is swapped or reloaded, and serves the new version’s', async () => {
    const data = [0.2, 0.2, 0.2, 0.2];
    await infer(kit, data);
    assert.equal(verdict(await infer(kit, data)), 'HIT');
    const models = (await kit.request('/admin/models', { headers: auth })).body as {
      models: Array<{ name: string; versions: Array<{ source: string }> }>;
    };
    const source = models.models.find((m) => m.name === 'mlp-classifier')!.versions[0]!.source;
    const swapped = await kit.request('/admin/models/mlp-classifier/swap', { body: { source }, headers: auth });
    assert.equal(swapped.status, 200, JSON.stringify(swapped.body));
    const after = await infer(kit, data);
    assert.equal(verdict(after), 'MISS');
    assert.equal((after.body as { model_version: string }).model_version, '2');
    assert.equal(verdict(await infer(kit, data)), 'HIT');
    // A reload (unload, then load from where it was found) drops them as well.
    assert.equal((await kit.request('/admin/models/mlp-classifier', { method: 'DELETE', headers: auth })).status, 200);
    assert.equal((await infer(kit, data)).status, 404);
    const loaded = await kit.request('/admin/models', { body: { name: 'mlp-classifier', source }, headers: auth });
    assert.equal(loaded.status, 201, JSON.stringify(loaded.body));
    assert.equal(verdict(await infer(kit, data)), 'MISS');
  });

  it('caches greedy and seeded generations, never sampled or streamed ones, and drops them on an LLM swap', async () => {
    const chat = (extra: object, headers: Record<string, string> = {}) =>
      kit.request('/v1/chat/completions', {
        body: {
          model: 'stories260K',
          messages: [{ role: 'user', content: 'Once upon a time' }],
          max_tokens: 12,
          ...extra,
        },
        headers: { ...auth, ...headers },
      });
    // The built-in model opens on its first request; its load drops what that request would have stored.
    assert.equal((await chat({ temperature: 0 })).status, 200);
    const greedy = await chat({ temperature: 0 });
    assert.equal(verdict(greedy), 'MISS');
    const hit = await chat({ temperature: 0 });
    assert.equal(verdict(hit), 'HIT');
    assert.deepEqual(hit.body, greedy.body);
    assert.equal(verdict(await chat({ temperature: 0.9, seed: 42 })), 'MISS');
    assert.equal(verdict(await chat({ temperature: 0.9, seed: 42 })), 'HIT');
    for (let i = 0; i < 3; i++) {
      const sampled = await chat({ temperature: 0.9 });
      assert.deepEqual([sampled.status, verdict(sampled)], [200, 'BYPASS']);
    }
    const completion = () =>
      kit.request('/v1/completions', {
        body: { model: 'stories260K', prompt: 'The cat', max_tokens: 8, temperature: 0 },
        headers: auth,
      });
    assert.equal(verdict(await completion()), 'MISS');
    assert.equal(verdict(await completion()), 'HIT');
    const streamed = await fetch(new URL('/v1/completions', kit.url), {
      method: 'POST',
      headers: { ...auth, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'stories260K', prompt: 'The cat', max_tokens: 8, temperature: 0, stream: true }),
    });
    assert.equal(streamed.headers.get(HEADER), 'BYPASS');
    assert.match(await streamed.text(), /\[DONE\]/);

    // The built-in's own file, loaded again as version 2.
    const source = join(PLUGINS, 'builtin-models', 'models', 'stories260K.gguf');
    const swapped = await kit.request('/admin/models/stories260K/swap', { body: { source }, headers: auth });
    assert.equal(swapped.status, 200, JSON.stringify(swapped.body));
    assert.equal(verdict(await chat({ temperature: 0 })), 'MISS');
    assert.equal(verdict(await completion()), 'MISS');
    assert.equal(verdict(await completion()), 'HIT');
  });
});

describe('prediction-cache over HTTP: the byte bound', () => {
  let kit: TestKernel;
  before(async () => {
    kit = await start({ 'plugin.prediction-cache.maxBytes': 4096 });
  });
  after(() => kit?.stop());

  it('evicts the least recently used answers to stay within maxBytes, and counts the evictions', async () => {
    const inputs = Array.from({ length: 40 }, (_, i) => [i, i + 1, i + 2, i + 3]);
    for (const data of inputs) assert.equal(verdict(await infer(kit, data)), 'MISS');
    assert.equal(verdict(await infer(kit, inputs.at(-1)!)), 'HIT', 'the newest answer is kept');
    assert.equal(verdict(await infer(kit, inputs[0]!)), 'MISS', 'the oldest was evicted');
    const evictions = await counter(kit, 'evictions', 'mlp-classifier');
    assert.ok(evictions > 0, `evictions: ${evictions}`);
    const text = (await kit.request('/metrics')).body as string;
    const usage = text
      .split('\n')
      .find((l) => l.startsWith('nucleus_cache_usage_bytes{') && l.includes('cache="prediction"'));
    assert.ok(usage && Number(usage.split(' ').at(-1)) <= 4096, usage);
  });
});
