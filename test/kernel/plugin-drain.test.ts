import { strict as assert } from 'node:assert';
import { rmSync } from 'node:fs';
import { startTestKernel, type TestKernel } from '@nucleus/sdk/testing';
import { tempDir } from '../helpers/paths.js';
import { writePlugin } from '../helpers/plugin-fixtures.js';

const ADMIN = 'admin-key-drain-0123456789';

interface Gate {
  open(): void;
  opened: Promise<void>;
}

/** What the fixture plugins reach in this process: the gate the slow route waits at, and who ran after disposal. */
const shared = globalThis as typeof globalThis & { __drainGate?: Gate; __drainLog?: string[] };

function gate(): Gate {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => (open = resolve));
  return { open, opened };
}

describe('plugin drain: disabling a plugin whose onRequest hook the disabling request passed', function () {
  this.timeout(120_000);
  let folder: string;
  let kit: TestKernel;
  const lines: string[] = [];
  const auth = { authorization: `Bearer ${ADMIN}` };
  const warnings = () => lines.filter((l) => /did not drain in time/.test(l));

  beforeEach(async () => {
    lines.length = 0;
    shared.__drainLog = [];
    folder = tempDir('drain');
    // Wraps every request, the admin API's included: each request is a use of this plugin while it runs.
    writePlugin(folder, {
      id: 'hooked',
      activate: `ctx.onDispose(() => globalThis.__drainLog.push('hooked disposed'));
        ctx.contribute(ExtensionPoints.hooks, { onRequest: async (http, next) => { await next(); } });`,
    });
    writePlugin(folder, {
      id: 'slow',
      activate: `ctx.contribute(ExtensionPoints.routes, { method: 'GET', path: '/slow/wait', access: 'public',
        handler: async () => { globalThis.__drainLog.push('slow waiting'); await globalThis.__drainGate.opened;
          globalThis.__drainLog.push('slow answered');
          return { ok: true }; } });`,
    });
    kit = await startTestKernel({
      plugins: [folder],
      builtinModels: false,
      env: { NUCLEUS_ADMIN_KEY: ADMIN },
      // Longer than the test waits: a drain that waited for its own request would time out, and say so.
      config: { 'plugins.drainTimeoutMs': 60_000, 'logging.level': 'warn' },
      logDestination: { write: (line) => void lines.push(line) },
    });
  });
  afterEach(async () => {
    shared.__drainGate?.open();
    await kit.stop();
    rmSync(folder, { recursive: true, force: true });
  });

  it('drains without waiting for the request that asked for it, and answers inactive', async () => {
    const res = await kit.request('/admin/plugins/hooked/disable', { method: 'POST', headers: auth });
    assert.equal(res.status, 200);
    assert.equal((res.body as { state: string }).state, 'inactive');
    assert.deepEqual(shared.__drainLog, ['hooked disposed']);
    assert.deepEqual(warnings(), [], 'the drain finished: no use but its own request was in flight');
  });

  it('still waits for the other requests in flight through the hook before disposing the plugin', async () => {
    shared.__drainGate = gate();
    const slow = kit.request('/slow/wait');
    // Bounded: once its handler runs, the slow request is inside the hook.
    for (let i = 0; i < 1000 && !shared.__drainLog!.includes('slow waiting'); i++)
      await new Promise((resolve) => setTimeout(resolve, 10));
    const disabling = kit.request('/admin/plugins/hooked/disable', { method: 'POST', headers: auth });
    for (let i = 0; i < 1000 && kit.kernel.plugins.get('hooked').state !== 'deactivating'; i++)
      await new Promise((resolve) => setTimeout(resolve, 10));
    assert.equal(kit.kernel.plugins.get('hooked').state, 'deactivating', 'waits for the slow request');
    assert.deepEqual(shared.__drainLog, ['slow waiting']);
    shared.__drainGate.open();
    assert.equal((await slow).status, 200);
    const res = await disabling;
    assert.equal((res.body as { state: string }).state, 'inactive');
    assert.deepEqual(shared.__drainLog, ['slow waiting', 'slow answered', 'hooked disposed']);
    assert.deepEqual(warnings(), []);
  });
});
