import { strict as assert } from 'node:assert';
import { rmSync } from 'node:fs';
import { startTestKernel, type TestKernel } from '@nucleus/sdk/testing';
import WebSocket from 'ws';
import { tempDir } from '../helpers/paths.js';
import { routePlugin, writePlugin } from '../helpers/plugin-fixtures.js';

const ADMIN = 'admin-key-0123456789';
const USER = 'user-key-0123456789';

describe('HTTP server', () => {
  let folder: string;
  let kit: TestKernel;
  before(async () => {
    folder = tempDir('server');
    writePlugin(folder, {
      ...routePlugin('svc', '1.0.0'),
      activate: `${routePlugin('svc', '1.0.0').activate}
        ctx.contribute(ExtensionPoints.routes, { method: 'POST', path: '/svc/echo', handler: (http) => ({ got: http.request.body }) });
        ctx.contribute(ExtensionPoints.routes, { method: 'GET', path: '/svc/crash', access: 'public', handler: () => { throw new Error('kaput'); } });`,
    });
    kit = await startTestKernel({
      plugins: [folder],
      env: { NUCLEUS_ADMIN_KEY: ADMIN },
      config: { 'auth.keys': [{ key: USER, role: 'user', name: 'alice' }] },
    });
  });
  after(async () => {
    await kit.stop();
    rmSync(folder, { recursive: true, force: true });
  });

  const auth = (key: string) => ({ authorization: `Bearer ${key}` });

  it('answers /health and /ready', async () => {
    assert.deepEqual((await kit.request('/health')).body, { status: 'ok' });
    const ready = await kit.request('/ready');
    assert.equal(ready.status, 200);
    assert.equal((ready.body as { status: string }).status, 'ready');
  });

  it('stays 200 on /ready and /readyz while degraded, saying why; goes 503 while a condition makes it unready', async () => {
    kit.kernel.health.set({
      key: 'backend',
      severity: 'degraded',
      reason: 'cuda requested but unusable: no NVIDIA driver; running on cpu',
    });
    try {
      for (const path of ['/ready', '/readyz']) {
        const res = await kit.request(path);
        assert.equal(res.status, 200, path);
        const body = res.body as { status: string; conditions: { key: string; reason: string }[] };
        assert.equal(body.status, 'degraded');
        assert.match(body.conditions[0]!.reason, /cuda requested but unusable/);
      }
      kit.kernel.health.set({ key: 'model:resnet@1', severity: 'unready', reason: 'model resnet failed to load' });
      for (const path of ['/ready', '/readyz']) {
        const res = await kit.request(path);
        assert.equal(res.status, 503, path);
        const body = res.body as { status: string; error: { message: string; code: string } };
        assert.equal(body.status, 'unavailable');
        assert.equal(body.error.code, 'server_unavailable');
        assert.match(body.error.message, /model:resnet@1: model resnet failed to load/);
        assert.match(body.error.message, /backend: cuda requested but unusable/);
      }
      assert.deepEqual(
        [(await kit.request('/livez')).status, (await kit.request('/livez')).body],
        [200, { status: 'ok' }],
      );
    } finally {
      kit.kernel.health.clear('backend');
      kit.kernel.health.clear('model:resnet@1');
    }
  });

  it('gives unknown routes a 404 error object and echoes or creates x-request-id', async () => {
    const res = await kit.request('/no/such/route', { headers: { 'x-request-id': 'client-chosen-42' } });
    assert.equal(res.status, 404);
    assert.equal(res.headers.get('x-request-id'), 'client-chosen-42');
    assert.deepEqual(Object.keys((res.body as { error: object }).error).sort(), ['code', 'message', 'type']);
    assert.equal((res.body as { error: { code: string } }).error.code, 'route_not_found');
    const fresh = await kit.request('/health');
    assert.match(fresh.headers.get('x-request-id')!, /^[0-9a-f-]{36}$/);
  });

  it('answers a method a route does not take with 405, an Allow header and an error object, for kernel and plugin routes', async () => {
    for (const [method, path, allow] of [
      ['GET', '/svc/echo', 'POST'],
      ['DELETE', '/health', 'HEAD, GET'],
      ['GET', '/admin/plugins/svc/reload', 'POST'],
    ] as const) {
      const res = await kit.request(path, { method, headers: auth(ADMIN) });
      assert.equal(res.status, 405, `${method} ${path}`);
      assert.equal(res.headers.get('allow'), allow);
      const error = (res.body as { error: { code: string; type: string; message: string } }).error;
      assert.equal(error.code, 'method_not_allowed');
      assert.equal(error.type, 'invalid_request_error');
      assert.match(error.message, new RegExp(`^${method} is not allowed on ${path}`));
    }
    assert.equal(
      (await kit.request('/svc/echo', { body: { a: 1 }, headers: auth(USER) })).status,
      200,
      'the allowed method still works',
    );
  });

  it('answers unparsable JSON with 400 and a server fault with 500, both as error objects', async () => {
    const bad = await kit.request('/svc/echo', {
      method: 'POST',
      body: '{"oops": ',
      headers: { 'content-type': 'application/json', ...auth(USER) },
    });
    assert.equal(bad.status, 400);
    assert.equal((bad.body as { error: { code: string } }).error.code, 'invalid_json');
    const ok = await kit.request('/svc/echo', { body: { a: 1 }, headers: auth(USER) });
    assert.deepEqual(ok.body, { got: { a: 1 } });
    const crash = await kit.request('/svc/crash');
    assert.equal(crash.status, 500);
    assert.equal((crash.body as { error: { type: string } }).error.type, 'server_error');
    assert.match((crash.body as { error: { message: string } }).error.message, /kaput/);
  });

  it('needs a user key on user routes once keys are configured', async () => {
    assert.equal((await kit.request('/svc/echo', { body: {} })).status, 401);
    assert.equal((await kit.request('/svc/echo', { body: {}, headers: auth('wrong-key-0000000000') })).status, 401);
    assert.equal((await kit.request('/svc/echo', { body: {}, headers: auth(USER) })).status, 200);
  });

  it('guards the admin API: 401 without or with an unknown key, 403 with a user key, 200 with the admin key', async () => {
    assert.equal((await kit.request('/admin/plugins')).status, 401);
    assert.equal((await kit.request('/admin/plugins', { headers: auth('nope-nope-nope-nope') })).status, 401);
    const user = await kit.request('/admin/plugins', { headers: auth(USER) });
    assert.equal(user.status, 403);
    assert.match((user.body as { error: { message: string } }).error.message, /needs an admin key/);
    const admin = await kit.request('/admin/plugins', { headers: auth(ADMIN) });
    assert.equal(admin.status, 200);
    const svc = (admin.body as { plugins: Array<{ id: string; version: string; state: string }> }).plugins.find(
      (p) => p.id === 'svc',
    );
    assert.deepEqual({ version: svc?.version, state: svc?.state }, { version: '1.0.0', state: 'active' });
  });

  it('reloads, disables and enables plugins through the admin API', async () => {
    const reload = await kit.request('/admin/plugins/svc/reload', { method: 'POST', headers: auth(ADMIN) });
    assert.equal(reload.status, 200);
    assert.equal((reload.body as { reloads: number }).reloads, 1);
    assert.equal(
      (await kit.request('/admin/plugins/svc/disable', { method: 'POST', headers: auth(ADMIN) })).status,
      200,
    );
    assert.equal((await kit.request('/svc/version')).status, 404, 'a disabled plugin’s routes are gone');
    assert.equal(
      (await kit.request('/admin/plugins/svc/enable', { method: 'POST', headers: auth(ADMIN) })).status,
      200,
    );
    assert.equal((await kit.request('/svc/version')).status, 200);
    const missing = await kit.request('/admin/plugins/ghost/reload', { method: 'POST', headers: auth(ADMIN) });
    assert.equal(missing.status, 404);
    assert.equal((missing.body as { error: { code: string } }).error.code, 'plugin_not_found');
  });

  it('changes runtime-adjustable config through PATCH /admin/config and refuses the rest', async () => {
    const changes: string[] = [];
    const off = kit.kernel.events.on('config.changed', (e) => changes.push(`${e.path}=${String(e.value)}`));
    try {
      const ok = await kit.request('/admin/config', {
        method: 'PATCH',
        body: { queue: { highWatermark: 64, lowWatermark: 32 } },
        headers: auth(ADMIN),
      });
      assert.equal(ok.status, 200);
      assert.equal(kit.kernel.config.get('queue.highWatermark'), 64);
      assert.deepEqual(changes.sort(), ['queue.highWatermark=64', 'queue.lowWatermark=32']);
      const refused = await kit.request('/admin/config', {
        method: 'PATCH',
        body: { 'server.port': 1 },
        headers: auth(ADMIN),
      });
      assert.equal(refused.status, 400);
      assert.match((refused.body as { error: { message: string } }).error.message, /server\.port/);
      const view = await kit.request('/admin/config', { headers: auth(ADMIN) });
      assert.equal((view.body as { config: { auth: { adminKey: string } } }).config.auth.adminKey, '***');
    } finally {
      off();
    }
  });

  it('streams kernel events to /ws subscribers', async () => {
    const ws = new WebSocket(`${kit.url.replace('http', 'ws')}/ws`, { headers: auth(USER) });
    const messages: Array<{ type: string; event?: string; data?: { id?: string; state?: string } }> = [];
    ws.on('message', (raw) => messages.push(JSON.parse(raw.toString())));
    await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
    ws.send('not json');
    ws.send(JSON.stringify({ type: 'subscribe', topics: ['plugins'] }));
    const until = async (pred: () => boolean) => {
      for (let i = 0; i < 100 && !pred(); i++) await new Promise((r) => setTimeout(r, 20));
      assert.ok(pred());
    };
    await until(() => messages.some((m) => m.type === 'subscribed'));
    await kit.request('/admin/plugins/svc/reload', { method: 'POST', headers: auth(ADMIN) });
    await until(() => messages.some((m) => m.event === 'plugin.reloaded'));
    assert.ok(
      messages.some((m) => m.type === 'error'),
      'bad JSON gets an error frame',
    );
    ws.close();
    const anonymous = new WebSocket(`${kit.url.replace('http', 'ws')}/ws`);
    const status = await new Promise<number>((resolve) =>
      anonymous
        .once('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0))
        .once('error', () => resolve(-1)),
    );
    assert.equal(status, 401);
  });
});

describe('HTTP server without an admin key', () => {
  it('answers admin routes 403 saying how to configure a key', async () => {
    const kit = await startTestKernel();
    try {
      const res = await kit.request('/admin/plugins');
      assert.equal(res.status, 403);
      assert.match((res.body as { error: { message: string } }).error.message, /set NUCLEUS_ADMIN_KEY/);
    } finally {
      await kit.stop();
    }
  });
});
