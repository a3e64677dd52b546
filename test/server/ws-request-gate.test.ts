import { strict as assert } from 'node:assert';
import type { NucleusEvents } from '@nucleus/sdk';
import { startTestKernel, type TestKernel } from '@nucleus/sdk/testing';
import { WsClient, type WsMessage } from '../helpers/ws-client.js';
import { requireStories } from '../llm-formats/llm-module.js';
import { Exposition, pluginDir, until } from '../observability/helpers.js';

const ADMIN = 'admin-key-ws-gate-0123456789';
const KEYS = {
  walt: { key: 'walt-key-ws-gate-0123456789', role: 'user', name: 'walt', limits: { requestsPerMinute: 2 } },
  vera: { key: 'vera-key-ws-gate-0123456789', role: 'user', name: 'vera', limits: { requestsPerMinute: 3 } },
  stan: { key: 'stan-key-ws-gate-0123456789', role: 'user', name: 'stan', limits: { concurrentStreams: 1 } },
  tina: { key: 'tina-key-ws-gate-0123456789', role: 'user', name: 'tina', limits: { tokensPerMinute: 5 } },
};
const bearer = (key: string) => ({ authorization: `Bearer ${key}` });
const INFER = { model: 'mlp-classifier', inputs: { input: [[0.1, 0.2, 0.3, 0.4]] } };
const code = (m: WsMessage) => (m.error as { code?: string } | undefined)?.code;

describe('WebSocket inference requests: the same request gates, events and metrics as HTTP', function () {
  this.timeout(120_000);
  let kit: TestKernel;
  const sockets: WsClient[] = [];
  const ends: NucleusEvents['request.end'][] = [];
  const starts: NucleusEvents['request.start'][] = [];
  const open = async (key: string) => {
    const c = await WsClient.open(kit.url, bearer(key));
    sockets.push(c);
    return c;
  };
  const infer = (key: string) => kit.request('/infer', { body: INFER, headers: bearer(key) });

  before(async () => {
    kit = await startTestKernel({
      plugins: [pluginDir('rate-limit'), pluginDir('api-openai'), pluginDir('api-kserve'), pluginDir('metrics')],
      env: { NUCLEUS_ADMIN_KEY: ADMIN },
      config: { 'scheduler.batchWindowMs': 5, 'auth.keys': Object.values(KEYS) },
    });
    kit.kernel.events.on('request.start', (e) => starts.push(e));
    kit.kernel.events.on('request.end', (e) => ends.push(e));
  });
  afterEach(() => {
    for (const c of sockets.splice(0)) c.ws.terminate();
  });
  after(async () => {
    await kit?.stop();
  });

  it('refuses a WS request once HTTP requests used up the key requests per minute, with retry_after', async () => {
    const c = await open(KEYS.walt.key); // the upgrade is the first request
    assert.equal((await infer(KEYS.walt.key)).status, 200);
    const refused = await c.request({ type: 'infer', id: 'late', ...INFER });
    assert.equal(refused.type, 'error', JSON.stringify(refused));
    assert.equal(code(refused), 'rate_limit_exceeded');
    assert.equal((refused.error as { type: string }).type, 'rate_limit_error');
    assert.match((refused.error as { message: string }).message, /limited to 2 requests per minute; retry in \d+ s/);
    assert.ok(Number(refused.retry_after) >= 1, String(refused.retry_after));
    // The refusal is a request like any other: reported with its status, and the socket goes on.
    const end = ends.find((e) => e.route === 'ws:infer' && e.status === 429);
    assert.deepEqual(
      { method: end?.method, path: end?.path, errorCode: end?.errorCode },
      { method: 'WS', path: '/ws', errorCode: 'rate_limit_exceeded' },
    );
    c.send({ type: 'ping' });
    await c.next((m) => m.type === 'pong');
  });

  it('refuses an HTTP request once WS requests used up the same budget', async () => {
    const c = await open(KEYS.vera.key);
    for (const id of [1, 2]) {
      const answer = await c.request({ type: 'infer', id, ...INFER });
      assert.equal(answer.type, 'result', JSON.stringify(answer));
    }
    const http = await infer(KEYS.vera.key);
    assert.equal(http.status, 429, JSON.stringify(http.body));
    assert.equal((http.body as { error: { code: string } }).error.code, 'rate_limit_exceeded');
  });

  it('reports each WS request with request.start and request.end under a request id of its own, for /metrics', async () => {
    const c = await open(KEYS.stan.key);
    const from = ends.length;
    const answer = await c.request({ type: 'infer', id: 'seen', ...INFER });
    assert.equal(answer.type, 'result');
    await until(() => ends.slice(from).some((e) => e.route === 'ws:infer' && e.status === 200), 'request.end');
    const end = ends.slice(from).find((e) => e.route === 'ws:infer' && e.status === 200)!;
    const start = starts.find((e) => e.requestId === end.requestId);
    assert.ok(start, 'request.start carries the same id');
    assert.equal(start.method, 'WS');
    assert.ok(start.tenant, 'the socket key tenant, so /ws shows the key its own requests');
    assert.equal(end.tenant, start.tenant);
    assert.doesNotMatch(end.requestId, /^ws-/);
    const text = (await kit.request('/metrics', { headers: bearer(ADMIN) })).body as string;
    const metrics = new Exposition(String(text));
    assert.ok(
      metrics.count('nucleus_http_request_duration_seconds', { method: 'WS', route: 'ws:infer', status: '200' }) >= 1,
    );
    assert.ok(
      metrics.count('nucleus_http_request_duration_seconds', { method: 'WS', route: 'ws:infer', status: '429' }) >= 1,
    );
    assert.ok(
      metrics.value('nucleus_http_request_errors_total', { route: 'ws:infer', code: 'rate_limit_exceeded' }) >= 1,
    );
  });

  it('holds one of the key concurrent streams per WS generation, shared with HTTP streams', async function () {
    requireStories(this);
    const c = await open(KEYS.stan.key);
    c.send({ type: 'generate', id: 'long', model: 'stories260K', prompt: 'Once', max_tokens: 400, ignore_eos: true });
    await c.next((m) => m.type === 'token' && m.id === 'long');
    const second = await c.request({
      type: 'generate',
      id: 'second',
      model: 'stories260K',
      prompt: 'Hi',
      max_tokens: 2,
    });
    assert.equal(code(second), 'too_many_streams', JSON.stringify(second));
    assert.equal(second.retry_after, 1);
    const http = await kit.request('/v1/completions', {
      body: { model: 'stories260K', prompt: 'Hi', max_tokens: 2, stream: true },
      headers: bearer(KEYS.stan.key),
    });
    assert.equal(http.status, 429);
    assert.equal((http.body as { error: { code: string } }).error.code, 'too_many_streams');
    // A request that does not stream is not held back by the cap.
    assert.equal((await c.request({ type: 'infer', id: 'tensor', ...INFER })).type, 'result');
    c.send({ type: 'cancel', id: 'long' });
    await c.next((m) => m.type === 'cancelled' && m.id === 'long');
    // The cancelled stream gave its slot back (a bounded wait for its end to be reported).
    await until(() => ends.some((e) => e.route === 'ws:generate' && e.status === 499), 'the cancelled stream to end');
    const third = await c.request({ type: 'generate', id: 'third', model: 'stories260K', prompt: 'Hi', max_tokens: 2 });
    assert.equal(third.type, 'done', JSON.stringify(third));
  });

  it('charges the tokens of a WS generation to the key tokens per minute', async function () {
    requireStories(this);
    const c = await open(KEYS.tina.key);
    const done = await c.request({
      type: 'generate',
      id: 'g',
      model: 'stories260K',
      prompt: 'the quick brown fox',
      max_tokens: 4,
      temperature: 0,
    });
    assert.equal(done.type, 'done', JSON.stringify(done));
    // The tokens are charged when the generation ends, which may be reported just after its last message.
    let next: WsMessage | undefined;
    for (let i = 0; i < 50; i++) {
      next = await c.request({ type: 'infer', id: `after-${i}`, ...INFER });
      if (next.type === 'error') break;
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.equal(code(next!), 'token_quota_exceeded', JSON.stringify(next));
    assert.ok(Number(next!.retry_after) >= 1);
    const http = await infer(KEYS.tina.key);
    assert.equal(http.status, 429);
    assert.equal((http.body as { error: { code: string } }).error.code, 'token_quota_exceeded');
  });
});
