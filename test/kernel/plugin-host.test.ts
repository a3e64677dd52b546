import { strict as assert } from 'node:assert';
import { rmSync } from 'node:fs';
import { ExtensionPoints, KERNEL_API_VERSION } from '@nucleus/sdk';
import { Nucleus } from '@nucleus/core';
import { tempDir } from '../helpers/paths.js';
import { routePlugin, writePlugin } from '../helpers/plugin-fixtures.js';

function kernelOn(folder: string, cli: Record<string, unknown> = {}): Nucleus {
  return Nucleus.create({
    env: {},
    pluginFolders: [folder],
    nodeModules: [],
    cli: { 'plugins.watch': false, 'logging.level': 'silent', ...cli },
  });
}

function states(kernel: Nucleus): Record<string, string> {
  return Object.fromEntries(kernel.plugins.list().map((p) => [p.id, p.state]));
}

describe('plugin host', () => {
  let folder: string;
  let kernel: Nucleus | undefined;
  beforeEach(() => (folder = tempDir('host')));
  afterEach(async () => {
    await kernel?.stop();
    kernel = undefined;
    rmSync(folder, { recursive: true, force: true });
  });

  it('activates in dependency order and contains a plugin that throws', async () => {
    const log: string[] = [];
    (globalThis as Record<string, unknown>).__activations = log;
    writePlugin(folder, { id: 'base', activate: 'globalThis.__activations.push(ctx.id);' });
    writePlugin(folder, {
      id: 'mid',
      requires: { base: '^1.0.0' },
      activate: 'globalThis.__activations.push(ctx.id);',
    });
    writePlugin(folder, {
      id: 'top',
      requires: { mid: '^1.0.0', base: '>=1.0.0' },
      activate: 'globalThis.__activations.push(ctx.id);',
    });
    writePlugin(folder, { id: 'broken', activate: "throw new Error('cannot reach the licence server');" });
    writePlugin(folder, { id: 'needs-broken', requires: { broken: '*' } });
    kernel = kernelOn(folder);
    await kernel.start();
    assert.deepEqual(log, ['base', 'mid', 'top']);
    assert.deepEqual(states(kernel), {
      base: 'active',
      broken: 'failed',
      mid: 'active',
      'needs-broken': 'failed',
      top: 'active',
    });
    assert.equal(kernel.plugins.get('broken').error, 'cannot reach the licence server');
    assert.match(
      kernel.plugins.get('needs-broken').error!,
      /requires plugin "broken", which is failed: cannot reach the licence server/,
    );
  });

  it('marks invalid manifests and unmet ranges as failed with the reason, and honours plugins.disabled', async () => {
    writePlugin(folder, { id: 'future', kernelApi: '^2.0.0' });
    writePlugin(folder, { id: 'old-dep', requires: { base: '^3.0.0' } });
    writePlugin(folder, { id: 'base', version: '1.4.0' });
    writePlugin(folder, { id: 'bad', manifest: { version: 'v-one' } });
    writePlugin(folder, { id: 'off' });
    kernel = kernelOn(folder, { 'plugins.disabled': ['off'] });
    await kernel.start();
    assert.deepEqual(states(kernel), {
      bad: 'failed',
      base: 'active',
      future: 'failed',
      off: 'inactive',
      'old-dep': 'failed',
    });
    assert.match(kernel.plugins.get('bad').error!, /nucleus\.version: must be a valid semver/);
    assert.equal(
      kernel.plugins.get('future').error,
      `needs kernel API ^2.0.0, but this kernel provides ${KERNEL_API_VERSION}`,
    );
    assert.equal(kernel.plugins.get('old-dep').error, 'requires plugin "base" ^3.0.0, but version 1.4.0 is installed');
  });

  it('gives each plugin its validated config section with defaults', async () => {
    writePlugin(folder, {
      id: 'configured',
      configSchema: {
        type: 'object',
        properties: { size: { type: 'integer', default: 4 }, name: { type: 'string', default: 'x' } },
      },
      activate: "ctx.contribute(ExtensionPoints.hooks, { name: 'cfg', config: ctx.config });",
    });
    kernel = kernelOn(folder, { 'plugin.configured.size': '9' });
    await kernel.start();
    const hook = kernel.extensions.point(ExtensionPoints.hooks).find('cfg')!.value as unknown as { config: unknown };
    assert.deepEqual(hook.config, { size: 9, name: 'x' });
  });

  it('reloads a plugin in place: new version and files swapped in, old one drained and disposed', async () => {
    (globalThis as Record<string, unknown>).__disposed = [];
    const dir = writePlugin(
      folder,
      routePlugin('svc', '1.0.0', { deactivate: 'globalThis.__disposed.push(ctx.version);' }),
    );
    kernel = kernelOn(folder);
    await kernel.start();
    const routes = kernel.extensions.point(ExtensionPoints.routes);
    const v1 = routes.find('svc:routes:0')!;
    assert.equal(v1.pluginVersion, '1.0.0');
    writePlugin(folder, routePlugin('svc', '1.1.0', { deactivate: 'globalThis.__disposed.push(ctx.version);' }));
    // How long a reload takes is measured by `npm run bench -- reload`, not here.
    const info = await kernel.plugins.reload('svc');
    assert.equal(info.version, '1.1.0');
    assert.equal(info.reloads, 1);
    const v2 = routes.find('svc:routes:0')!;
    assert.equal(v2.pluginVersion, '1.1.0');
    const answer = (await routes.use(v2, (r) => r.handler({} as never))) as { tag: string };
    assert.equal(answer.tag, 'svc@1.1.0', 'the relative import was loaded afresh');
    await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual((globalThis as Record<string, unknown>).__disposed, ['1.0.0']);
    assert.ok(dir);
  });

  it('keeps the running version when the new one fails to activate or to validate', async () => {
    writePlugin(folder, routePlugin('svc', '1.0.0'));
    kernel = kernelOn(folder);
    await kernel.start();
    writePlugin(folder, routePlugin('svc', '2.0.0', { activate: "throw new Error('bad build');" }));
    await assert.rejects(kernel.plugins.reload('svc'), (err: Error & { status?: number }) => {
      assert.equal(err.status, 422);
      assert.match(err.message, /reloading "svc" failed, version 1\.0\.0 keeps running: bad build/);
      return true;
    });
    writePlugin(folder, { ...routePlugin('svc', '2.0.1'), manifest: { entry: 42 } });
    await assert.rejects(kernel.plugins.reload('svc'), /nucleus\.entry: must be string/);
    const info = kernel.plugins.get('svc');
    assert.equal(info.state, 'active');
    assert.equal(info.version, '1.0.0');
    assert.equal(info.lastReload?.ok, false);
    assert.equal(kernel.extensions.point(ExtensionPoints.routes).list()[0]?.pluginVersion, '1.0.0');
  });

  it('re-binds dependents on reload and refuses to disable what active plugins require', async () => {
    writePlugin(folder, { id: 'base' });
    writePlugin(folder, { id: 'user', requires: { base: '^1.0.0' } });
    kernel = kernelOn(folder);
    await kernel.start();
    await kernel.plugins.reload('base');
    assert.equal(kernel.plugins.get('user').reloads, 1, 'the dependent was reloaded against the new instance');
    await assert.rejects(kernel.plugins.disable('base'), /cannot disable "base": active plugins require it \(user\)/);
    writePlugin(folder, { id: 'base', version: '2.0.0' });
    await assert.rejects(
      kernel.plugins.reload('base'),
      /version 2\.0\.0 does not satisfy "user", which requires base \^1\.0\.0/,
    );
    await kernel.plugins.disable('user');
    await kernel.plugins.disable('base');
    assert.deepEqual(states(kernel), { base: 'inactive', user: 'inactive' });
    await kernel.plugins.enable('base');
    assert.equal(kernel.plugins.get('base').version, '2.0.0');
    await kernel.plugins.enable('user');
    assert.equal(kernel.plugins.get('user').state, 'failed');
    assert.match(kernel.plugins.get('user').error!, /version 2\.0\.0 is installed/);
  });

  it('announces every state change on the event bus', async () => {
    writePlugin(folder, { id: 'solo' });
    kernel = kernelOn(folder);
    const seen: string[] = [];
    kernel.events.on('plugin.state', (e) => seen.push(`${e.id}:${e.previous}->${e.state}`));
    await kernel.start();
    await kernel.plugins.disable('solo');
    assert.deepEqual(seen, [
      'solo:discovered->resolved',
      'solo:resolved->activating',
      'solo:activating->active',
      'solo:active->deactivating',
      'solo:deactivating->inactive',
    ]);
  });

  it('hands what a plugin keeps to its next activation, and drops it when the plugin is disabled', async () => {
    // Each activation counts itself in the kept object and shows the count and the object's birth version.
    const counting = (version: string) => ({
      id: 'keeper',
      version,
      activate: `const kept = ctx.keep('count', () => ({ n: 0, born: ctx.version })); kept.n++;
        ctx.contribute(ExtensionPoints.routes, { method: 'GET', path: '/keeper', access: 'public',
          handler: () => ({ n: kept.n, born: kept.born, version: ctx.version }) });`,
    });
    writePlugin(folder, counting('1.0.0'));
    kernel = kernelOn(folder);
    await kernel.start();
    const routes = kernel.extensions.point(ExtensionPoints.routes);
    const ask = () => {
      const route = routes.list().find((c) => c.value.path === '/keeper')!;
      return routes.use(route, (r) => r.handler({} as never));
    };
    assert.deepEqual(await ask(), { n: 1, born: '1.0.0', version: '1.0.0' });
    writePlugin(folder, counting('1.1.0'));
    await kernel.plugins.reload('keeper');
    assert.deepEqual(await ask(), { n: 2, born: '1.0.0', version: '1.1.0' }, 'a new version gets the same object');
    await kernel.plugins.disable('keeper');
    await kernel.plugins.enable('keeper');
    assert.deepEqual(await ask(), { n: 1, born: '1.1.0', version: '1.1.0' }, 'a disable dropped it');
  });
});
