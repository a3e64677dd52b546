import { strict as assert } from 'node:assert';
import { get } from 'node:http';
import { gunzipSync } from 'node:zlib';
import type { TestKernel } from '@nucleus/sdk/testing';
import WebSocket from 'ws';
import { startDashboard } from './dashboard-kernel.js';

const ADMIN = 'admin-key-dashboard-0123456789';
const USER = 'user-key-dashboard-01234567890';

async function signIn(kit: TestKernel, key: string): Promise<{ cookie: string; csrf: string; setCookie: string }> {
  const res = await fetch(`${kit.url}/dashboard/api/session`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}` },
  });
  assert.equal(res.status, 201, await res.clone().text());
  const setCookie = res.headers.get('set-cookie') ?? '';
  const body = (await res.json()) as { csrfToken: string };
  return { cookie: setCookie.split(';')[0]!, csrf: body.csrfToken, setCookie };
}

function socket(url: string, headers: Record<string, string>): Promise<{ status?: number; ws?: WebSocket }> {
  return new Promise((resolve) => {
    const ws = new WebSocket(`${url.replace('http', 'ws')}/ws`, { headers });
    ws.once('open', () => resolve({ ws }));
    ws.once('unexpected-response', (_req, res) => resolve({ status: res.statusCode }));
    ws.once('error', () => resolve({}));
  });
}

describe('dashboard plugin: page, sign-in and session cookie', () => {
  let kit: TestKernel;
  before(async () => {
    kit = await startDashboard({ admin: ADMIN, user: USER }, { 'plugin.stats.snapshotIntervalMs': 200 });
  });
  after(async () => {
    await kit.stop();
  });

  it('serves the page at / and /dashboard without a key, gzip-compressed, with an import map and a CSP', async () => {
    for (const path of ['/', '/dashboard']) {
      const res = await fetch(`${kit.url}${path}`, { headers: { 'accept-encoding': 'gzip' } });
      assert.equal(res.status, 200);
      assert.match(res.headers.get('content-type') ?? '', /text\/html/);
      assert.match(res.headers.get('content-security-policy') ?? '', /script-src 'self' 'sha256-/);
      const html = await res.text();
      assert.match(html, /"preact":"\/dashboard\/vendor\/preact\.mjs"/);
      assert.doesNotMatch(html, /https?:\/\//, 'nothing is loaded from another host');
    }
    const raw = await fetch(`${kit.url}/dashboard/vendor/uplot.mjs`, { headers: { 'accept-encoding': 'gzip' } });
    assert.equal(raw.headers.get('content-encoding'), 'gzip');
    const etag = raw.headers.get('etag')!;
    const again = await fetch(`${kit.url}/dashboard/vendor/uplot.mjs`, { headers: { 'if-none-match': etag } });
    assert.equal(again.status, 304);
    // fetch undoes the gzip itself: read the bytes on the wire with node:http to see they are gzip of the module.
    const wire = await new Promise<Buffer>((resolve, reject) =>
      get(`${kit.url}/dashboard/vendor/uplot.mjs`, { headers: { 'accept-encoding': 'gzip' } }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c)).on('end', () => resolve(Buffer.concat(chunks)));
      }).on('error', reject),
    );
    const plain = Buffer.from(await (await fetch(`${kit.url}/dashboard/vendor/uplot.mjs`)).arrayBuffer());
    assert.ok(wire.length < plain.length / 2, `${wire.length} gzip bytes for ${plain.length}`);
    assert.deepEqual(gunzipSync(wire), plain);
  });

  it('signs in with a key for an HttpOnly SameSite=Strict cookie that holds a session id, not the key', async () => {
    const { setCookie, cookie } = await signIn(kit, USER);
    assert.match(setCookie, /httponly/i);
    assert.match(setCookie, /samesite=strict/i);
    assert.doesNotMatch(setCookie, /secure/i, 'no Secure flag over plain HTTP');
    assert.ok(!setCookie.includes(USER), 'the cookie does not carry the key');
    const me = await kit.request('/dashboard/api/session', { headers: { cookie } });
    assert.equal(me.status, 200);
    assert.deepEqual(
      { role: (me.body as { role: string }).role, name: (me.body as { name: string }).name },
      { role: 'user', name: 'viewer' },
    );
    const anonymous = await kit.request('/dashboard/api/session');
    assert.equal(anonymous.status, 401);
    const wrong = await kit.request('/dashboard/api/session', {
      method: 'POST',
      headers: { authorization: 'Bearer not-a-key' },
    });
    assert.equal(wrong.status, 401);
  });

  it('a user session reads but gets 403 from admin routes; an admin session may act', async () => {
    const user = await signIn(kit, USER);
    assert.equal((await kit.request('/dashboard/api/plugins', { headers: { cookie: user.cookie } })).status, 200);
    const refused = await kit.request('/admin/plugins/stats/reload', {
      method: 'POST',
      headers: { cookie: user.cookie, 'x-csrf-token': user.csrf },
    });
    assert.equal(refused.status, 403);
    assert.equal((refused.body as { error: { code: string } }).error.code, 'forbidden');
    const admin = await signIn(kit, ADMIN);
    const listed = await kit.request('/admin/plugins', { headers: { cookie: admin.cookie } });
    assert.equal(listed.status, 200);
    const reloaded = await kit.request('/admin/plugins/stats/reload', {
      method: 'POST',
      headers: { cookie: admin.cookie, 'x-csrf-token': admin.csrf },
    });
    assert.equal(reloaded.status, 200, JSON.stringify(reloaded.body));
  });

  it('refuses a write that has the session cookie but not its CSRF token', async () => {
    const admin = await signIn(kit, ADMIN);
    for (const headers of [{ cookie: admin.cookie }, { cookie: admin.cookie, 'x-csrf-token': 'guess' }] as Record<
      string,
      string
    >[]) {
      const res = await kit.request('/admin/plugins/stats/reload', { method: 'POST', headers });
      assert.equal(res.status, 403);
      assert.equal((res.body as { error: { code: string } }).error.code, 'credential_refused');
      assert.match((res.body as { error: { message: string } }).error.message, /X-CSRF-Token/);
    }
  });

  it('signing out ends the session on the server', async () => {
    const user = await signIn(kit, USER);
    const out = await kit.request('/dashboard/api/session', {
      method: 'DELETE',
      headers: { cookie: user.cookie, 'x-csrf-token': user.csrf },
    });
    assert.equal(out.status, 200);
    assert.equal((await kit.request('/dashboard/api/session', { headers: { cookie: user.cookie } })).status, 401);
  });

  it('the cookie opens /ws from the same origin only, and samples arrive on the dashboard topic', async () => {
    const user = await signIn(kit, USER);
    const host = new URL(kit.url).host;
    assert.equal((await socket(kit.url, {})).status, 401, 'no cookie, no key: refused');
    assert.equal((await socket(kit.url, { cookie: user.cookie, origin: 'https://evil.example' })).status, 401);
    const { ws } = await socket(kit.url, { cookie: user.cookie, origin: `http://${host}` });
    assert.ok(ws, 'opened with the cookie');
    const sample = await new Promise<{ t: number; cpuPercent: number }>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no dashboard.sample in 10 s')), 10_000);
      ws.send(JSON.stringify({ type: 'subscribe', topics: ['dashboard'] }));
      ws.on('message', (raw) => {
        const msg = JSON.parse(raw.toString()) as { type: string; event?: string; data?: unknown };
        if (msg.event === 'dashboard.sample') {
          clearTimeout(timer);
          resolve(msg.data as { t: number; cpuPercent: number });
        }
      });
    });
    ws.close();
    assert.equal(typeof sample.cpuPercent, 'number');
    const history = await kit.request('/dashboard/api/history', { headers: { cookie: user.cookie } });
    const samples = (history.body as { samples: Array<{ t: number }> }).samples;
    assert.ok(
      samples.some((s) => s.t === sample.t),
      'the pushed sample is in the history a fresh page loads',
    );
  });

  it('a session outlives a reload of the plugin, and ends when the plugin is disabled', async () => {
    const admin = await signIn(kit, ADMIN);
    const user = await signIn(kit, USER);
    const me = (s: { cookie: string }) => kit.request('/dashboard/api/session', { headers: { cookie: s.cookie } });
    const reload = await kit.request('/admin/plugins/dashboard/reload', {
      method: 'POST',
      headers: { cookie: admin.cookie, 'x-csrf-token': admin.csrf },
    });
    assert.equal(reload.status, 200, JSON.stringify(reload.body));
    assert.equal((reload.body as { reloads: number }).reloads, 1);
    const after = await me(user);
    assert.equal(after.status, 200, JSON.stringify(after.body));
    assert.deepEqual(
      [(after.body as { role: string }).role, (after.body as { csrfToken: string }).csrfToken],
      ['user', user.csrf],
      'the same session, with its CSRF token',
    );
    // A write with the session after the reload: its CSRF token still counts.
    const write = await kit.request('/admin/plugins/stats/reload', {
      method: 'POST',
      headers: { cookie: admin.cookie, 'x-csrf-token': admin.csrf },
    });
    assert.equal(write.status, 200, JSON.stringify(write.body));

    // Through the kernel: a disable over HTTP waits for its own request to leave the plugin's request hook.
    await kit.kernel.plugins.disable('dashboard');
    await kit.kernel.plugins.enable('dashboard');
    assert.equal((await me(user)).status, 401, 'disabling the dashboard ended its sessions');
  });

  it('offers the log topic to admin keys only, and refuses a user key that asks for it', async () => {
    type Reply = { type: string; topics?: string[]; error?: { code: string } };
    const replies = (key: string, subscribe: string[]) =>
      new Promise<Reply[]>((resolve, reject) => {
        const seen: Reply[] = [];
        // Listening from the start: the welcome comes as soon as the socket opens.
        const ws = new WebSocket(`${kit.url.replace('http', 'ws')}/ws`, {
          headers: { authorization: `Bearer ${key}` },
        });
        const timer = setTimeout(() => reject(new Error(`no answer in 10 s: ${JSON.stringify(seen)}`)), 10_000);
        ws.on('message', (raw) => {
          const msg = JSON.parse(raw.toString()) as Reply;
          seen.push(msg);
          if (msg.type === 'welcome') ws.send(JSON.stringify({ type: 'subscribe', topics: subscribe }));
          else if (msg.type === 'subscribed' || msg.type === 'error') {
            clearTimeout(timer);
            ws.close();
            resolve(seen);
          }
        });
        ws.on('error', reject);
      });
    const admin = await replies(ADMIN, ['logs']);
    assert.ok(admin[0]!.topics!.includes('logs'), 'an admin is offered the log topic');
    assert.deepEqual(admin.at(-1), { type: 'subscribed', topics: ['logs'] });
    const user = await replies(USER, ['logs']);
    assert.ok(!user[0]!.topics!.includes('logs'), 'a user key is not offered it');
    assert.ok(user[0]!.topics!.includes('dashboard'));
    assert.equal(user.at(-1)!.error?.code, 'forbidden_topic');
  });
});

describe('dashboard plugin without keys', () => {
  let kit: TestKernel;
  before(async () => {
    kit = await startDashboard();
  });
  after(async () => {
    await kit.stop();
  });

  it('is read-only and says how to enable admin', async () => {
    const me = await kit.request('/dashboard/api/session');
    assert.equal(me.status, 200);
    assert.equal((me.body as { mode: string }).mode, 'open');
    assert.match((me.body as { note: string }).note, /NUCLEUS_ADMIN_KEY/);
    const admin = await kit.request('/admin/plugins/stats/reload', { method: 'POST' });
    assert.equal(admin.status, 403);
    const signIn = await kit.request('/dashboard/api/session', { method: 'POST' });
    assert.equal(signIn.status, 409);
  });
});
