import { strict as assert } from 'node:assert';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { startTestKernel, type TestKernel } from '@nucleus/sdk/testing';
import WebSocket from 'ws';
import { tempDir } from '../helpers/paths.js';
import { writePlugin } from '../helpers/plugin-fixtures.js';
import { until } from '../observability/helpers.js';

const ADMIN = 'admin-key-ws-watched-0123456789';

describe('/ws plugin topics: told when their first socket subscribes and their last leaves', function () {
  this.timeout(60_000);
  let folder: string;
  let kit: TestKernel;
  before(async () => {
    folder = tempDir('ws-watched');
    writePlugin(folder, {
      id: 'svc',
      activate: `const calls = [];
        ctx.contribute(ExtensionPoints.wsTopics, { name: 'svc-topic', events: ['model.loaded'], watched: (w) => calls.push(w) });
        ctx.contribute(ExtensionPoints.routes, { method: 'GET', path: '/svc/watched', handler: () => ({ calls }) });`,
    });
    kit = await startTestKernel({
      plugins: [join(folder, 'svc')],
      builtinModels: false,
      env: { NUCLEUS_ADMIN_KEY: ADMIN },
    });
  });
  after(async () => {
    await kit.stop();
    rmSync(folder, { recursive: true, force: true });
  });

  const auth = { authorization: `Bearer ${ADMIN}` };
  const calls = async () => ((await kit.request('/svc/watched', { headers: auth })).body as { calls: boolean[] }).calls;

  /** An open socket, and the frames it received. */
  async function socket(): Promise<{ ws: WebSocket; frames: Array<{ type: string }> }> {
    const ws = new WebSocket(`${kit.url.replace('http', 'ws')}/ws`, { headers: auth });
    const frames: Array<{ type: string }> = [];
    ws.on('message', (raw) => frames.push(JSON.parse(raw.toString()) as { type: string }));
    await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
    return { ws, frames };
  }
  async function send(s: { ws: WebSocket; frames: Array<{ type: string }> }, type: string, answer: string) {
    const before = s.frames.filter((f) => f.type === answer).length;
    s.ws.send(JSON.stringify({ type, topics: ['svc-topic'] }));
    await until(() => s.frames.filter((f) => f.type === answer).length > before, answer);
  }

  it('calls watched(true) once for the first subscriber and watched(false) once the last is gone', async () => {
    assert.deepEqual(await calls(), []);
    const a = await socket();
    const b = await socket();
    await send(a, 'subscribe', 'subscribed');
    await send(a, 'subscribe', 'subscribed');
    assert.deepEqual(await calls(), [true]);
    await send(b, 'subscribe', 'subscribed');
    await send(a, 'unsubscribe', 'unsubscribed');
    assert.deepEqual(await calls(), [true]);
    await send(a, 'subscribe', 'subscribed');
    await send(b, 'unsubscribe', 'unsubscribed');
    assert.deepEqual(await calls(), [true]);
    // A socket that goes away leaves its topics.
    a.ws.close();
    let seen = await calls();
    for (let i = 0; i < 400 && seen.length < 2; i++) {
      await new Promise((r) => setTimeout(r, 25));
      seen = await calls();
    }
    assert.deepEqual(seen, [true, false]);
    b.ws.close();
  });
});
