import { strict as assert } from 'node:assert';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { startTestKernel, type TestKernel } from '@nucleus/sdk/testing';
import { tempDir } from '../helpers/paths.js';
import { writePlugin } from '../helpers/plugin-fixtures.js';
import { pluginDir, until } from '../observability/helpers.js';
import { auditLines } from './audit-lines.js';

const ADMIN = 'admin-key-audit-0123456789';
const ALICE = 'alice-key-audit-0123456789';
const auth = (key: string) => ({ authorization: `Bearer ${key}` });

describe('audit-log plugin: admin actions and refused keys over HTTP', function () {
  this.timeout(120_000);
  let folder: string;
  let file: string;
  let kit: TestKernel;
  before(async () => {
    folder = tempDir('audit-log');
    file = join(folder, 'logs', 'audit.log');
    writePlugin(folder, {
      id: 'svc',
      activate: `ctx.contribute(ExtensionPoints.routes, { method: 'GET', path: '/svc/ping', handler: () => ({ pong: true }) });`,
    });
    kit = await startTestKernel({
      plugins: [join(folder, 'svc'), pluginDir('audit-log'), pluginDir('model-lifecycle')],
      env: { NUCLEUS_ADMIN_KEY: ADMIN },
      config: {
        'auth.keys': [{ key: ALICE, role: 'user', name: 'alice' }],
        'plugin.audit-log.file': file,
        'plugin.audit-log.maxBytes': 4096,
        'plugin.audit-log.maxFiles': 2,
      },
    });
  });
  after(async () => {
    await kit.stop();
    rmSync(folder, { recursive: true, force: true });
  });

  // Sends a request and returns the audit line it wrote (found by its request id).
  const audited = async (path: string, init: { method?: string; body?: unknown; headers?: Record<string, string> }) => {
    const res = await kit.request(path, init);
    const id = res.headers.get('x-request-id')!;
    await until(() => auditLines(file).some((l) => l.requestId === id), `the audit line of ${init.method} ${path}`);
    return { res, line: auditLines(file).find((l) => l.requestId === id)! };
  };

  it('records a config change with the keys it set, the key name, the address and the request id', async () => {
    const { res, line } = await audited('/admin/config', {
      method: 'PATCH',
      headers: auth(ADMIN),
      body: { 'server.jsonMaxDepth': 32 },
    });
    assert.equal(res.status, 200);
    assert.equal(line.action, 'config.update');
    assert.equal(line.target, 'server.jsonMaxDepth');
    assert.equal(line.outcome, 'ok');
    assert.equal(line.status, 200);
    assert.equal(line.key, 'admin');
    assert.match(line.address, /127\.0\.0\.1$/);
    assert.equal(line.method, 'PATCH');
    assert.equal(line.route, '/admin/config');
    assert.ok(Math.abs(Date.parse(line.time) - Date.now()) < 60_000, line.time);
  });

  it('records plugin disable, enable and reload with the plugin as their target', async () => {
    for (const verb of ['disable', 'enable', 'reload']) {
      const { res, line } = await audited(`/admin/plugins/svc/${verb}`, { method: 'POST', headers: auth(ADMIN) });
      assert.equal(res.status, 200, JSON.stringify(res.body));
      assert.deepEqual(
        [line.action, line.target, line.outcome, line.route],
        [`plugins.${verb}`, 'svc', 'ok', `/admin/plugins/:id/${verb}`],
      );
    }
  });

  it('records model unloads and failed loads, with the error code of a failure', async () => {
    const unloaded = await audited('/admin/models/mlp-classifier', { method: 'DELETE', headers: auth(ADMIN) });
    assert.equal(unloaded.res.status, 200, JSON.stringify(unloaded.res.body));
    assert.deepEqual(
      [unloaded.line.action, unloaded.line.target, unloaded.line.outcome],
      ['models.delete', 'mlp-classifier', 'ok'],
    );
    const failed = await audited('/admin/models', {
      headers: auth(ADMIN),
      body: { name: 'ghost', source: join(folder, 'no-such-model.onnx') },
    });
    assert.equal(failed.res.status, 400);
    assert.deepEqual(
      [failed.line.action, failed.line.target, failed.line.outcome, failed.line.status, failed.line.errorCode],
      ['models.create', 'ghost', 'failed', 400, 'model_source_not_found'],
    );
  });

  it('records refused keys on every route: no key, an unknown key, a user key on an admin route', async () => {
    const none = await audited('/svc/ping', { headers: {} });
    assert.equal(none.res.status, 401);
    assert.deepEqual(
      [none.line.action, none.line.outcome, none.line.errorCode, none.line.target],
      ['auth.refused', 'refused', 'missing_api_key', 'GET /svc/ping'],
    );
    assert.equal(none.line.key, undefined);
    const wrong = await audited('/admin/config', { method: 'PATCH', headers: auth('not-a-key-at-all'), body: {} });
    assert.deepEqual([wrong.line.status, wrong.line.errorCode, wrong.line.key], [401, 'invalid_api_key', undefined]);
    const user = await audited('/admin/plugins/svc/disable', { method: 'POST', headers: auth(ALICE) });
    assert.deepEqual([user.line.status, user.line.errorCode, user.line.key], [403, 'forbidden', 'alice']);
    // The plugin was not disabled, and a user's ordinary request is not an admin action.
    const ping = await kit.request('/svc/ping', { headers: auth(ALICE) });
    assert.equal(ping.status, 200);
    assert.ok(!auditLines(file).some((l) => l.requestId === ping.headers.get('x-request-id')));
  });

  it('leaves reads out unless includeReads is set at run time, and never writes a key', async () => {
    const read = await kit.request('/admin/config', { headers: auth(ADMIN) });
    assert.equal(read.status, 200);
    assert.equal(
      (
        await kit.request('/admin/config', {
          method: 'PATCH',
          headers: auth(ADMIN),
          body: { 'plugin.audit-log.includeReads': true },
        })
      ).status,
      200,
    );
    const { line } = await audited('/admin/plugins', { headers: auth(ADMIN) });
    assert.deepEqual([line.action, line.outcome], ['plugins.read', 'ok']);
    assert.ok(!auditLines(file).some((l) => l.requestId === read.headers.get('x-request-id')));
    const text = readFileSync(file, 'utf8');
    assert.ok(!text.includes(ADMIN) && !text.includes(ALICE), 'a key was written to the audit log');
  });

  it('rotates the file by size, keeping maxFiles rotated files, every line whole', async () => {
    for (let i = 0; i < 60; i++)
      await kit.request(`/svc/ping?attempt=${i}`, { headers: auth('wrong-key-for-rotation') });
    await until(() => existsSync(`${file}.2`), 'a second rotation');
    const last = await audited('/svc/ping', { headers: {} });
    assert.equal(last.line.errorCode, 'missing_api_key');
    assert.ok(!existsSync(`${file}.3`), 'more rotated files than maxFiles');
    for (const f of [file, `${file}.1`, `${file}.2`]) {
      const lines = auditLines(f);
      assert.ok(lines.length > 0, `${f} is empty`);
      assert.ok(readFileSync(f).byteLength <= 4096 + 512, `${f} grew past maxBytes`);
    }
  });
});
