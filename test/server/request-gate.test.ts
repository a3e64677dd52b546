import { strict as assert } from 'node:assert';
import { rmSync } from 'node:fs';
import type { IncomingHttpHeaders } from 'node:http';
import { join } from 'node:path';
import { startTestKernel, type TestKernel } from '@nucleus/sdk/testing';
import WebSocket from 'ws';
import { REPO_ROOT, tempDir } from '../helpers/paths.js';
import { writePlugin } from '../helpers/plugin-fixtures.js';

const ADMIN = 'admin-key-gate-0123456789';
const KEYS = [
  { key: 'erin-key-gate-0123456789', role: 'user', name: 'erin', limits: { requestsPerMinute: 2 } },
  { key: 'fred-key-gate-0123456789', role: 'user', name: 'fred' },
];
const auth = (key: string) => ({ authorization: `Bearer ${key}` });

type Upgrade =
  | { opened: true; headers: IncomingHttpHeaders; ws: WebSocket }
  | { opened: false; status: number; headers: IncomingHttpHeaders; body: { error: { code: string; message: string } } };

/** Opens `/ws`; resolves with the 101's headers once open, or with the HTTP answer that refused the upgrade. */
function upgrade(url: string, key: string): Promise<Upgrade> {
  const ws = new WebSocket(`${url.replace('http', 'ws')}/ws`, { headers: auth(key) });
  let headers: IncomingHttpHeaders = {};
  ws.once('upgrade', (res) => (headers = res.headers));
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve({ opened: true, headers, ws }));
    ws.once('error', reject);
    ws.once('unexpected-response', (_req, res) => {
      let text = '';
      res.on('data', (chunk: Buffer) => (text += chunk.toString()));
      res.on('end', () =>
        resolve({ opened: false, status: res.statusCode ?? 0, headers: res.headers, body: JSON.parse(text) }),
      );
    });
  });
}

describe('request gate: one rate-limit budget across HTTP, the /ws upgrade and other protocols', function () {
  this.timeout(120_000);
  let folder: string;
  let kit: TestKernel;
  before(async () => {
    folder = tempDir('request-gate');
    // A protocol of its own, as a gRPC or WebSocket inference surface would be: it authenticates its way (here the
    // caller comes in the body), then asks the gates through admitRequest, holds a stream while it waits, runs a
    // generation under the request id it gave the gate, and releases the pass when its answer is done.
    writePlugin(folder, {
      id: 'other',
      activate: `const { admitRequest, ServiceRefs } = await import('@nucleus/sdk');
        const gates = ctx.extensionPoint(ExtensionPoints.requestGate);
        const generation = ctx.container.resolve(ServiceRefs.generation.id);
        const waiting = [];
        let n = 0;
        ctx.contribute(ExtensionPoints.routes, { method: 'POST', path: '/other/call', access: 'public', handler: async (c) => {
          const b = c.request.body;
          const requestId = 'other-' + ++n;
          const pass = await admitRequest(gates, { caller: b.caller, address: 'other:' + b.caller.name, protocol: 'other', route: 'Call', requestId, stream: b.stream === true });
          try {
            if (b.hold) await new Promise((r) => waiting.push(r));
            if (b.prompt) for await (const _ of await generation.generate({ model: 'tiny-llama', prompt: b.prompt, maxTokens: 4, temperature: 0, requestId })) {}
            return { headers: pass.headers };
          } finally { pass.release(); }
        } });
        ctx.contribute(ExtensionPoints.routes, { method: 'POST', path: '/other/release', access: 'public', handler: () => { const k = waiting.length; waiting.splice(0).forEach((r) => r()); return { released: k }; } });
        ctx.contribute(ExtensionPoints.routes, { method: 'GET', path: '/other/ping', handler: () => ({ pong: true }) });`,
    });
    kit = await startTestKernel({
      plugins: [
        join(folder, 'other'),
        join(REPO_ROOT, 'plugins', 'rate-limit'),
        join(REPO_ROOT, 'plugins', 'api-openai'),
      ],
      env: { NUCLEUS_ADMIN_KEY: ADMIN },
      config: { 'auth.keys': KEYS },
    });
  });
  after(async () => {
    await kit.stop();
    rmSync(folder, { recursive: true, force: true });
  });

  it('counts a /ws upgrade against the key requests per minute, and refuses one past it with 429 and its headers', async () => {
    const erin = KEYS[0]!.key;
    const first = await upgrade(kit.url, erin);
    assert.ok(first.opened, 'the first upgrade is let through');
    first.ws.close();
    assert.equal(first.headers['ratelimit-limit'], '2');
    assert.equal(first.headers['ratelimit-remaining'], '1');
    // One budget: the HTTP request takes the last one, so the next upgrade is refused.
    const http = await kit.request('/other/ping', { headers: auth(erin) });
    assert.equal(http.status, 200);
    assert.equal(http.headers.get('ratelimit-remaining'), '0');
    const refused = await upgrade(kit.url, erin);
    assert.equal(refused.opened, false);
    if (refused.opened) return;
    assert.equal(refused.status, 429);
    assert.equal(refused.body.error.code, 'rate_limit_exceeded');
    assert.match(refused.body.error.message, /limited to 2 requests per minute; retry in \d+ s/);
    assert.ok(Number(refused.headers['retry-after']) >= 1, String(refused.headers['retry-after']));
    assert.equal(refused.headers['ratelimit-limit'], '2');
    assert.equal(refused.headers['ratelimit-remaining'], '0');
    assert.equal(refused.headers.connection, 'close');
    // Another key has its own budget.
    const fred = await upgrade(kit.url, KEYS[1]!.key);
    assert.ok(fred.opened);
    fred.ws.close();
  });

  it('applies a default limit changed at run time to upgrades as well', async () => {
    const patch = (changes: Record<string, unknown>) =>
      kit.request('/admin/config', { method: 'PATCH', headers: auth(ADMIN), body: changes });
    try {
      assert.equal((await patch({ 'plugin.rate-limit.default.requestsPerMinute': 1 })).status, 200);
      const fred = KEYS[1]!.key;
      const opened = await upgrade(kit.url, fred);
      if (opened.opened) opened.ws.close();
      const refused = await upgrade(kit.url, fred);
      assert.deepEqual([opened.opened, refused.opened], [true, false]);
      if (!refused.opened) assert.equal(refused.status, 429);
    } finally {
      await patch({ 'plugin.rate-limit.default.requestsPerMinute': null });
    }
  });

  it('gives another protocol the same budget: requests, concurrent streams and LLM tokens through admitRequest', async () => {
    const call = (body: Record<string, unknown>) => kit.request('/other/call', { body });
    const gina = { name: 'gina', role: 'user', limits: { requestsPerMinute: 10, concurrentStreams: 1 } };
    const held = call({ caller: gina, stream: true, hold: true });
    let second = await call({ caller: gina, stream: true });
    // The held stream is open once the second is refused; a bounded wait for it to be admitted.
    for (let i = 0; i < 50 && second.status !== 429; i++) second = await call({ caller: gina, stream: true });
    assert.equal(second.status, 429, JSON.stringify(second.body));
    assert.equal((second.body as { error: { code: string } }).error.code, 'too_many_streams');
    assert.equal(((await kit.request('/other/release', { body: {} })).body as { released: number }).released, 1);
    const answer = (await held).body as { headers: Record<string, string> };
    assert.equal(answer.headers['ratelimit-limit'], '10');
    const hank = { name: 'hank', role: 'user', limits: { tokensPerMinute: 5 } };
    const ran = await call({ caller: hank, prompt: 'the quick brown fox' });
    assert.equal(ran.status, 200, JSON.stringify(ran.body));
    const next = await call({ caller: hank });
    assert.equal(next.status, 429, JSON.stringify(next.body));
    assert.equal((next.body as { error: { code: string } }).error.code, 'token_quota_exceeded');
    assert.ok(Number(next.headers.get('retry-after')) >= 1);
  });
});
