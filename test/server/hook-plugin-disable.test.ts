import { strict as assert } from 'node:assert';
import { rmSync } from 'node:fs';
import { startTestKernel, type TestKernel } from '@nucleus/sdk/testing';
import { tempDir } from '../helpers/paths.js';
import { writePlugin } from '../helpers/plugin-fixtures.js';

const ADMIN = 'admin-key-0123456789';

// The drain waits far longer than these tests may run: a disable that waited for its own request would time out.
const DRAIN_MS = 120_000;

describe('disabling a plugin whose onRequest hook wraps the admin request', () => {
  let folder: string;
  let kit: TestKernel;
  const gate = globalThis as { gateOpen?: Promise<void>; gateEntered?: () => void };

  beforeEach(async () => {
    folder = tempDir('hook-disable');
    // A hook around every request (it adds a header after the route answered) and a route that waits until the test
    // lets it go.
    writePlugin(folder, {
      id: 'wrapper',
      activate: `
        ctx.contribute(ExtensionPoints.hooks, {
          name: 'wrapper',
          onRequest: async (http, next) => { await next(); http.set('x-wrapped', '1'); },
        });
        ctx.contribute(ExtensionPoints.routes, {
          method: 'GET', path: '/wrapper/slow', access: 'public',
          handler: async () => { globalThis.gateEntered?.(); await globalThis.gateOpen; return { done: true }; },
        });`,
    });
    kit = await startTestKernel({
      plugins: [folder],
      builtinModels: false,
      env: { NUCLEUS_ADMIN_KEY: ADMIN },
      config: { 'plugins.drainTimeoutMs': DRAIN_MS },
    });
  });
  afterEach(async () => {
    await kit.stop();
    rmSync(folder, { recursive: true, force: true });
    delete gate.gateOpen;
    delete gate.gateEntered;
  });

  const disable = () =>
    kit.request('/admin/plugins/wrapper/disable', { method: 'POST', headers: { authorization: `Bearer ${ADMIN}` } });

  it('does not wait for the request that asked for it', async function () {
    this.timeout(30_000);
    assert.equal((await kit.request('/health')).headers.get('x-wrapped'), '1', 'the hook wraps requests');
    const res = await disable();
    assert.equal(res.status, 200);
    assert.equal((res.body as { state: string }).state, 'inactive');
    assert.equal((await kit.request('/health')).headers.get('x-wrapped'), null, 'the hook is gone');
  });

  it('still waits for other requests inside the hook', async function () {
    this.timeout(30_000);
    let open!: () => void;
    gate.gateOpen = new Promise((resolve) => (open = resolve));
    const entered = new Promise<void>((resolve) => (gate.gateEntered = resolve));
    const order: string[] = [];
    const slow = kit.request('/wrapper/slow').then((res) => {
      order.push('slow request answered');
      return res;
    });
    await entered;
    const disabled = disable().then((res) => {
      order.push('disable answered');
      return res;
    });
    // Give the disable every chance to finish early, then let the slow request go.
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.deepEqual(order, [], 'the disable waits while another request is inside the hook');
    open();
    const [slowRes, disableRes] = await Promise.all([slow, disabled]);
    assert.deepEqual(order, ['slow request answered', 'disable answered']);
    assert.equal(slowRes.status, 200);
    assert.equal(slowRes.headers.get('x-wrapped'), '1', 'the hook finished its work on the drained request');
    assert.equal(disableRes.status, 200);
    assert.equal((disableRes.body as { state: string }).state, 'inactive');
  });
});
