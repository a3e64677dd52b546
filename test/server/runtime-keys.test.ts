import { strict as assert } from 'node:assert';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import type { NucleusEvents } from '@nucleus/sdk';
import { startTestKernel, type TestKernel } from '@nucleus/sdk/testing';
import { REPO_ROOT, tempDir } from '../helpers/paths.js';
import { writePlugin } from '../helpers/plugin-fixtures.js';

const ADMIN = 'admin-key-runtime-keys-0123456789';
const ALICE = 'alice-key-runtime-keys-0123456789';
const BOB = 'bob-key-runtime-keys-01234567890';
const CAROL = 'carol-key-runtime-keys-012345678';
const auth = (key: string) => ({ authorization: `Bearer ${key}` });

describe('auth.keys changed at run time: keys and their limits without a restart, never echoed', function () {
  this.timeout(120_000);
  let folder: string;
  let kit: TestKernel;
  const changes: NucleusEvents['config.changed'][] = [];
  before(async () => {
    folder = tempDir('runtime-keys');
    writePlugin(folder, {
      id: 'svc',
      activate: `ctx.contribute(ExtensionPoints.routes, { method: 'GET', path: '/svc/ping', handler: () => ({ pong: true }) });`,
    });
    kit = await startTestKernel({
      plugins: [join(folder, 'svc'), join(REPO_ROOT, 'plugins', 'rate-limit')],
      builtinModels: false,
      modelPlugins: false,
      env: { NUCLEUS_ADMIN_KEY: ADMIN },
      config: {
        'auth.keys': [
          { key: ALICE, role: 'user', name: 'alice' },
          { key: CAROL, role: 'user', name: 'carol' },
        ],
      },
    });
    kit.kernel.events.on('config.changed', (e) => changes.push(e));
  });
  after(async () => {
    await kit.stop();
    rmSync(folder, { recursive: true, force: true });
  });
  const patch = (body: unknown) => kit.request('/admin/config', { method: 'PATCH', headers: auth(ADMIN), body });

  it('applies a new key list to the next request: added keys work, removed ones get 401, new limits hold', async () => {
    assert.equal((await kit.request('/svc/ping', { headers: auth(CAROL) })).status, 200);
    assert.equal((await kit.request('/svc/ping', { headers: auth(BOB) })).status, 401);
    const res = await patch({
      'auth.keys': [
        { key: ALICE, role: 'user', name: 'alice', limits: { requestsPerMinute: 1 } },
        { key: BOB, role: 'user', name: 'bob' },
      ],
    });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.equal((await kit.request('/svc/ping', { headers: auth(BOB) })).status, 200);
    const gone = await kit.request('/svc/ping', { headers: auth(CAROL) });
    assert.equal(gone.status, 401);
    const alice = [await kit.request('/svc/ping', { headers: auth(ALICE) })];
    alice.push(await kit.request('/svc/ping', { headers: auth(ALICE) }));
    assert.deepEqual(
      alice.map((r) => r.status),
      [200, 429],
    );
    assert.equal(alice[0]!.headers.get('ratelimit-limit'), '1');
  });

  it('never shows a key: not in the answer to the change, its event or GET /admin/config', async () => {
    const res = await patch({ 'auth.keys': [{ key: ALICE, role: 'user', name: 'alice' }] });
    assert.equal(res.status, 200);
    const texts = [
      JSON.stringify(res.body),
      JSON.stringify(changes),
      JSON.stringify((await kit.request('/admin/config', { headers: auth(ADMIN) })).body),
    ];
    for (const text of texts) for (const key of [ALICE, BOB, CAROL]) assert.ok(!text.includes(key), text);
    const changed = (res.body as { changed: { path: string; value: { key: string; name: string }[] }[] }).changed;
    assert.deepEqual(changed[0]!.value, [{ key: '***', role: 'user', name: 'alice' }]);
    assert.equal(changes.at(-1)?.path, 'auth.keys');
  });

  it('refuses one secret under two roles, naming the entries but not the key, and keeps the keys it had', async () => {
    const res = await patch({
      'auth.keys': [
        { key: BOB, role: 'user', name: 'bob' },
        { key: BOB, role: 'admin', name: 'bob-admin' },
      ],
    });
    assert.equal(res.status, 400, JSON.stringify(res.body));
    const error = (res.body as { error: { code: string; message: string } }).error;
    assert.equal(error.code, 'config_invalid');
    assert.match(error.message, /auth\.keys\.1\.key is the same key as auth\.keys\.0\.key/);
    assert.ok(!JSON.stringify(res.body).includes(BOB));
    assert.equal((await kit.request('/svc/ping', { headers: auth(BOB) })).status, 401);
    assert.equal((await kit.request('/svc/ping', { headers: auth(ALICE) })).status, 200);
  });
});
