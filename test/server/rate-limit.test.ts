import { strict as assert } from 'node:assert';
import { rmSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { join } from 'node:path';
import { startTestKernel, type TestKernel } from '@nucleus/sdk/testing';
import { REPO_ROOT, tempDir } from '../helpers/paths.js';
import { writePlugin } from '../helpers/plugin-fixtures.js';

const ADMIN = 'admin-key-0123456789';
const KEYS = [
  { key: 'alice-key-0123456789', role: 'user', name: 'alice', limits: { requestsPerMinute: 3 } },
  { key: 'bob-key-0123456789ab', role: 'user', name: 'bob', limits: { tokensPerMinute: 5 } },
  { key: 'carol-key-0123456789', role: 'user', name: 'carol', limits: { concurrentStreams: 1 } },
  { key: 'dave-key-01234567890', role: 'user', name: 'dave' },
];
const auth = (key: string) => ({ authorization: `Bearer ${key}` });
const errorOf = (body: unknown) => (body as { error: { type: string; code: string; message: string } }).error;

describe('rate-limit plugin: token buckets per key and per address over HTTP', function () {
  this.timeout(120_000);
  let folder: string;
  let kit: TestKernel;
  before(async () => {
    folder = tempDir('rate-limit');
    // A route that holds its answer until /svc/release is called, to keep a streamed request open.
    writePlugin(folder, {
      id: 'svc',
      activate: `const waiting = [];
        ctx.contribute(ExtensionPoints.routes, { method: 'POST', path: '/svc/hold', handler: async () => { await new Promise((r) => waiting.push(r)); return { held: true }; } });
        ctx.contribute(ExtensionPoints.routes, { method: 'POST', path: '/svc/release', handler: () => { const n = waiting.length; waiting.splice(0).forEach((r) => r()); return { released: n }; } });
        ctx.contribute(ExtensionPoints.routes, { method: 'GET', path: '/svc/ping', handler: () => ({ pong: true }) });`,
    });
    kit = await startTestKernel({
      plugins: [
        join(folder, 'svc'),
        join(REPO_ROOT, 'plugins', 'rate-limit'),
        join(REPO_ROOT, 'plugins', 'api-openai'),
        join(REPO_ROOT, 'plugins', 'metrics'),
      ],
      env: { NUCLEUS_ADMIN_KEY: ADMIN },
      config: { 'auth.keys': KEYS },
    });
  });
  after(async () => {
    await kit.stop();
    rmSync(folder, { recursive: true, force: true });
  });

  it('refuses a key past its requests per minute with 429, Retry-After and RateLimit headers on every answer', async () => {
    const alice = auth(KEYS[0]!.key);
    for (const remaining of ['2', '1', '0']) {
      const res = await kit.request('/svc/ping', { headers: alice });
      assert.equal(res.status, 200);
      assert.equal(res.headers.get('ratelimit-limit'), '3');
      assert.equal(res.headers.get('ratelimit-remaining'), remaining);
      assert.ok(Number(res.headers.get('ratelimit-reset')) >= 1);
    }
    const refused = await kit.request('/svc/ping', { headers: alice });
    assert.equal(refused.status, 429);
    assert.deepEqual(
      [errorOf(refused.body).type, errorOf(refused.body).code],
      ['rate_limit_error', 'rate_limit_exceeded'],
    );
    assert.match(errorOf(refused.body).message, /limited to 3 requests per minute; retry in \d+ s/);
    assert.ok(Number(refused.headers.get('retry-after')) >= 1, String(refused.headers.get('retry-after')));
    assert.equal(refused.headers.get('ratelimit-limit'), '3');
    assert.equal(refused.headers.get('ratelimit-remaining'), '0');
    // Other keys have their own buckets; public and admin routes are not limited.
    assert.equal((await kit.request('/svc/ping', { headers: auth(KEYS[3]!.key) })).status, 200);
    assert.equal((await kit.request('/health', { headers: alice })).status, 200);
    assert.equal((await kit.request('/health', { headers: alice })).headers.get('ratelimit-limit'), null);
  });

  it('refuses a limited key before reading its body: a body that never completes still gets its 429', async () => {
    const res = await partialBody('/v1/completions', KEYS[0]!.key);
    assert.equal(res.status, 429);
    assert.equal(errorOf(res.body).code, 'rate_limit_exceeded');
  });

  it('charges LLM tokens when a generation ends, and refuses the next request while the bucket is in debt', async () => {
    const bob = auth(KEYS[1]!.key);
    const first = await kit.request('/v1/completions', {
      headers: bob,
      body: { model: 'tiny-llama', prompt: 'the quick brown fox', max_tokens: 4, temperature: 0 },
    });
    assert.equal(first.status, 200, JSON.stringify(first.body));
    const usage = (first.body as { usage: { total_tokens: number } }).usage;
    assert.ok(usage.total_tokens > 5, JSON.stringify(usage));
    const next = await kit.request('/svc/ping', { headers: bob });
    assert.equal(next.status, 429, JSON.stringify(next.body));
    assert.equal(errorOf(next.body).code, 'token_quota_exceeded');
    assert.match(errorOf(next.body).message, /5 LLM tokens \(prompt plus generated\) per minute/);
    assert.ok(Number(next.headers.get('retry-after')) >= 1);
    assert.deepEqual([next.headers.get('ratelimit-limit'), next.headers.get('ratelimit-remaining')], ['5', '0']);
  });

  it('caps the streams a key holds open at once, and frees the slot when the answer ends', async () => {
    const carol = auth(KEYS[2]!.key);
    const held = kit.request('/svc/hold', { headers: carol, body: { stream: true } });
    // The first stream is open once the second is refused; a bounded wait for it to be admitted.
    let second = await kit.request('/svc/hold', { headers: carol, body: { stream: true } });
    for (let i = 0; i < 50 && second.status !== 429; i++) {
      await kit.request('/svc/release', { headers: auth(ADMIN), body: {} });
      second = await kit.request('/svc/hold', { headers: carol, body: { stream: true } });
    }
    assert.equal(second.status, 429, JSON.stringify(second.body));
    assert.equal(errorOf(second.body).code, 'too_many_streams');
    assert.equal(second.headers.get('retry-after'), '1');
    // A request that does not stream is not counted.
    assert.equal((await kit.request('/svc/ping', { headers: carol })).status, 200);
    const released = await kit.request('/svc/release', { headers: auth(ADMIN), body: {} });
    assert.equal((released.body as { released: number }).released, 1);
    assert.equal((await held).status, 200);
    const again = kit.request('/svc/hold', { headers: carol, body: { stream: true } });
    let freed = await kit.request('/svc/release', { headers: auth(ADMIN), body: {} });
    for (let i = 0; i < 50 && (freed.body as { released: number }).released === 0; i++)
      freed = await kit.request('/svc/release', { headers: auth(ADMIN), body: {} });
    assert.equal((await again).status, 200);
  });

  it('applies a default limit changed at run time to the next request, and per client address', async () => {
    const dave = auth(KEYS[3]!.key);
    const patch = (changes: Record<string, unknown>) =>
      kit.request('/admin/config', { method: 'PATCH', headers: auth(ADMIN), body: changes });
    try {
      assert.equal((await patch({ 'plugin.rate-limit.default.requestsPerMinute': 2 })).status, 200);
      const statuses = [];
      for (let i = 0; i < 3; i++) statuses.push((await kit.request('/svc/ping', { headers: dave })).status);
      assert.deepEqual(statuses, [200, 200, 429]);
      // alice's own limit (3) still applies to her, not the default.
      assert.equal(
        (await kit.request('/svc/ping', { headers: auth(KEYS[0]!.key) })).headers.get('ratelimit-limit'),
        '3',
      );
      assert.equal((await patch({ 'plugin.rate-limit.default.requestsPerMinute': null })).status, 200);
      assert.equal((await kit.request('/svc/ping', { headers: dave })).status, 200);
      // Per address: every key from this address shares the bucket.
      assert.equal((await patch({ 'plugin.rate-limit.perAddress.requestsPerMinute': 1 })).status, 200);
      const first = await kit.request('/svc/ping', { headers: dave });
      assert.equal(first.status, 200);
      const other = await kit.request('/svc/ping', { headers: auth(KEYS[2]!.key) });
      assert.equal(other.status, 429);
      assert.match(errorOf(other.body).message, /this client address is limited to 1 requests per minute/);
    } finally {
      await patch({ 'plugin.rate-limit.perAddress.requestsPerMinute': null });
    }
  });

  it('counts allowed and refused requests and charged tokens per key name in /metrics', async () => {
    const text = String((await kit.request('/metrics')).body);
    assert.match(text, /nucleus_rate_limit_requests_total\{key="alice",outcome="allowed"\} [1-9]/);
    assert.match(text, /nucleus_rate_limit_requests_total\{key="alice",outcome="refused_requests"\} [1-9]/);
    assert.match(text, /nucleus_rate_limit_requests_total\{key="carol",outcome="refused_streams"\} 1/);
    assert.match(text, /nucleus_rate_limit_tokens_total\{key="bob"\} [1-9]/);
    assert.doesNotMatch(text, /alice-key|127\.0\.0\.1/);
  });

  /** Sends the headers and 1 KiB of a 9 MB JSON body that never comes; resolves with the answer given meanwhile. */
  function partialBody(path: string, key?: string): Promise<{ status: number; body: unknown }> {
    return new Promise((resolve, reject) => {
      const req = httpRequest(new URL(path, kit.url), {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'content-length': String(9_000_000),
          ...(key ? auth(key) : {}),
        },
      });
      req.on('response', (res) => {
        let text = '';
        res.setEncoding('utf8').on('data', (d: string) => {
          text += d;
        });
        res.on('end', () => {
          req.destroy();
          resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) as unknown });
        });
      });
      req.on('error', reject);
      req.write(`{"prompt":"${'x'.repeat(1024)}`);
    });
  }
});
