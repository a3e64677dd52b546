import { strict as assert } from 'node:assert';
import { startTestKernel, type TestKernel } from '@nucleus/sdk/testing';
import WebSocket from 'ws';
import { Exposition, pluginDir, until } from '../observability/helpers.js';

const ADMIN = 'admin-key-ws-limits-0123456789';
const ALICE = 'alice-key-ws-limits-0123456789';
const BOB = 'bob-key-ws-limits-0123456789';

interface Refusal {
  status: number;
  retryAfter?: string;
  body: { error: { code: string; message: string; type: string } };
}

/** Opens a socket; resolves once it is open, or with the HTTP refusal when the upgrade is answered otherwise. */
function connect(url: string, key: string): Promise<WebSocket | Refusal> {
  const ws = new WebSocket(`${url.replace('http', 'ws')}/ws`, { headers: { authorization: `Bearer ${key}` } });
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
    ws.once('unexpected-response', (_req, res) => {
      let text = '';
      res.on('data', (chunk: Buffer) => (text += chunk.toString()));
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          ...(res.headers['retry-after'] && { retryAfter: String(res.headers['retry-after']) }),
          body: JSON.parse(text) as Refusal['body'],
        }),
      );
    });
  });
}

function closed(ws: WebSocket): Promise<{ code: number; reason: string }> {
  return new Promise((resolve) => ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() })));
}

describe('/ws limits: connection caps and slow readers', () => {
  let kit: TestKernel;
  const open: WebSocket[] = [];
  before(async () => {
    kit = await startTestKernel({
      plugins: [pluginDir('metrics')],
      builtinModels: false,
      env: { NUCLEUS_ADMIN_KEY: ADMIN },
      config: {
        'auth.keys': [
          { key: ALICE, role: 'user', name: 'alice' },
          { key: BOB, role: 'user', name: 'bob' },
        ],
        'ws.maxConnections': 4,
        'ws.maxConnectionsPerKey': 2,
        'ws.maxBufferedBytes': 64 * 1024,
        'ws.maxDroppedMessages': 100,
      },
    });
  });
  afterEach(() => {
    for (const ws of open.splice(0)) ws.terminate();
  });
  after(async () => {
    await kit.stop();
  });

  const socket = async (key: string): Promise<WebSocket> => {
    const ws = await connect(kit.url, key);
    assert.ok(ws instanceof WebSocket, `the socket opened (${JSON.stringify((ws as Refusal).body)})`);
    open.push(ws);
    return ws;
  };

  it('refuses a key past ws.maxConnectionsPerKey and everyone past ws.maxConnections with 429', async () => {
    await socket(ALICE);
    const second = await socket(ALICE);
    const third = (await connect(kit.url, ALICE)) as Refusal;
    assert.equal(third.status, 429);
    assert.equal(third.retryAfter, '5');
    assert.equal(third.body.error.code, 'too_many_connections');
    assert.match(third.body.error.message, /"alice" has 2 WebSocket connections open.*ws\.maxConnectionsPerKey/);

    await socket(BOB);
    await socket(BOB);
    const admin = (await connect(kit.url, ADMIN)) as Refusal;
    assert.equal(admin.status, 429, 'four sockets are the server-wide limit, whatever the key');
    assert.match(admin.body.error.message, /ws\.maxConnections\b/);

    // A socket that closes gives its place back.
    const gone = closed(second);
    second.close();
    await gone;
    let again: WebSocket | Refusal | undefined;
    for (let i = 0; i < 50 && !(again instanceof WebSocket); i++) {
      again = await connect(kit.url, ALICE);
      if (!(again instanceof WebSocket)) await new Promise((r) => setTimeout(r, 20));
    }
    assert.ok(again instanceof WebSocket, 'alice may open a socket again once one of hers closed');
    open.push(again);
  });

  it('drops messages for a socket that does not read, then closes it with 1013 and a reason', async () => {
    const ws = await socket(ADMIN);
    const received: Array<{ type: string; event?: string }> = [];
    ws.on('message', (raw) => received.push(JSON.parse(raw.toString())));
    ws.send(JSON.stringify({ type: 'subscribe', topics: ['config'] }));
    await until(() => received.some((m) => m.type === 'subscribed'), 'the subscription');
    const end = closed(ws);
    let closedBy: { code: number; reason: string } | undefined;
    void end.then((c) => (closedBy = c));
    // The client stops reading: what the server sends piles up in the socket buffers, then in the server.
    ws.pause();
    const value = 'x'.repeat(32 * 1024);
    let sent = 0;
    const dropped = async () => {
      const text = (await kit.request('/metrics')).body as string;
      if (!text.includes('nucleus_ws_slow_disconnects_total{')) return 0;
      return new Exposition(text).value('nucleus_ws_slow_disconnects_total', { key: 'admin' });
    };
    // Bounded: 64 MB of events at most, far beyond what loopback socket buffers and 64 KiB of server buffer hold.
    for (; sent < 2000; sent++) {
      kit.kernel.events.emit('config.changed', { path: 'test.flood', value, previous: sent });
      if (sent % 50 === 49) {
        await new Promise((r) => setImmediate(r));
        if ((await dropped()) >= 1) break;
      }
    }
    assert.equal(await dropped(), 1, `the server closed the slow socket after ${sent} events`);
    const metrics = new Exposition((await kit.request('/metrics')).body as string);
    assert.ok(metrics.value('nucleus_ws_dropped_messages_total', { key: 'admin' }) >= 100);
    ws.resume();
    await until(() => closedBy !== undefined, 'the close frame', 10_000);
    assert.equal(closedBy!.code, 1013);
    assert.match(closedBy!.reason, /messages dropped: the client reads too slowly/);
    assert.ok(
      received.filter((m) => m.type === 'event').length < sent,
      'events were dropped rather than buffered without bound',
    );
  });
});
