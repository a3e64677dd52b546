import { strict as assert } from 'node:assert';
import type { RequestBatch } from '@nucleus/plugin-dashboard';
import type { TestKernel } from '@nucleus/sdk/testing';
import WebSocket from 'ws';
import { startDashboard } from './dashboard-kernel.js';

const ADMIN = 'admin-key-dashboard-feed-012345';
const USER = 'user-key-dashboard-feed-0123456';

/** A socket subscribed to the recent-requests topic, and the batches it received so far. */
async function watch(url: string, key: string): Promise<{ batches: RequestBatch[]; ws: WebSocket }> {
  const ws = new WebSocket(`${url.replace('http', 'ws')}/ws`, { headers: { authorization: `Bearer ${key}` } });
  const batches: RequestBatch[] = [];
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('not subscribed in 10 s')), 10_000);
    ws.on('message', (raw) => {
      const msg = JSON.parse(raw.toString()) as { type: string; event?: string; data?: unknown; error?: unknown };
      if (msg.type === 'welcome') ws.send(JSON.stringify({ type: 'subscribe', topics: ['dashboard-requests'] }));
      else if (msg.type === 'subscribed') {
        clearTimeout(timer);
        resolve();
      } else if (msg.type === 'error') reject(new Error(JSON.stringify(msg.error)));
      else if (msg.event === 'dashboard.requests') batches.push(msg.data as RequestBatch);
    });
    ws.on('error', reject);
  });
  return { batches, ws };
}

const ids = (batches: RequestBatch[]) => batches.flatMap((b) => b.requests.map((r) => r.requestId));

describe('dashboard plugin: recent requests over /ws', () => {
  let kit: TestKernel;
  before(async () => {
    kit = await startDashboard({ admin: ADMIN, user: USER }, { 'plugin.dashboard.requestsIntervalMs': 1000 });
  });
  after(async () => {
    await kit.stop();
  });

  it('come in batches, not a message per request, and a user key sees its own requests only', async () => {
    const admin = await watch(kit.url, ADMIN);
    const user = await watch(kit.url, USER);
    try {
      const send = async (key?: string) => {
        const res = await fetch(`${kit.url}/dashboard/api/history`, {
          headers: key ? { authorization: `Bearer ${key}` } : {},
        });
        await res.arrayBuffer();
        return res.headers.get('x-request-id')!;
      };
      const mine = await Promise.all(Array.from({ length: 40 }, () => send(USER)));
      const theirs = await Promise.all([send(ADMIN), send(ADMIN)]);
      const anonymous = await send();
      const all = [...mine, ...theirs, anonymous];
      // Bounded: the batches leave once a second; 10 s is ample on a busy machine.
      for (let i = 0; i < 100 && !all.every((id) => ids(admin.batches).includes(id)); i++)
        await new Promise((resolve) => setTimeout(resolve, 100));
      assert.deepEqual(
        all.filter((id) => !ids(admin.batches).includes(id)),
        [],
        'an admin sees every request',
      );
      for (let i = 0; i < 30 && !mine.every((id) => ids(user.batches).includes(id)); i++)
        await new Promise((resolve) => setTimeout(resolve, 100));
      assert.deepEqual(
        mine.filter((id) => !ids(user.batches).includes(id)),
        [],
        'the user sees its own requests',
      );
      assert.deepEqual(
        ids(user.batches).filter((id) => theirs.includes(id) || id === anonymous),
        [],
        "nor the admin's requests, nor those without a key",
      );
      assert.ok(
        user.batches.length < mine.length,
        `${mine.length} requests came in ${user.batches.length} messages, not one each`,
      );
      const row = user.batches.flatMap((b) => b.requests).find((r) => r.requestId === mine[0])!;
      assert.equal(row.route, '/dashboard/api/history');
      assert.equal(row.status, 200);
      assert.equal(row.prompt, undefined, 'no prompt text while showPrompts is off');
      assert.ok(user.batches.every((b) => b.tenant === user.batches[0]!.tenant && b.requests.length <= 100));
    } finally {
      admin.ws.close();
      user.ws.close();
    }
  });
});
