import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { NucleusServer } from '@nucleus/core';
import { tempDir } from '../helpers/paths.js';
import { type FixturePlugin, routePlugin, writePlugin } from '../helpers/plugin-fixtures.js';

async function until(pred: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const SIZE_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  properties: {
    size: { type: 'integer', minimum: 1, default: 4, description: 'How many.' },
    name: { type: 'string', default: 'x', description: 'What it is called.' },
  },
};

// A plugin answering `GET /<id>/config` with the config section it was activated with.
function configPlugin(id: string, version: string, configSchema: Record<string, unknown>): FixturePlugin {
  return {
    id,
    version,
    configSchema,
    activate: `ctx.contribute(ExtensionPoints.routes, { method: 'GET', path: '/${id}/config', access: 'public',
      handler: () => ({ version: ctx.version, config: ctx.config }) });`,
  };
}

describe('plugin config at run time', function () {
  this.timeout(60_000);
  let folder: string;
  let server: NucleusServer | undefined;

  beforeEach(() => (folder = tempDir('late-config')));
  afterEach(async () => {
    await server?.stop();
    server = undefined;
    rmSync(folder, { recursive: true, force: true });
  });

  const start = async (cli: Record<string, unknown>) => {
    writePlugin(folder, routePlugin('svc', '1.0.0'));
    server = await NucleusServer.start({
      env: {},
      pluginFolders: [folder],
      nodeModules: [],
      builtinModels: false,
      cli: { 'server.port': 0, 'plugins.watch': true, 'logging.level': 'silent', ...cli },
    });
    return server;
  };
  const plugin = (id: string) => server!.kernel.plugins.list().find((p) => p.id === id);
  const get = async (path: string) => {
    const res = await fetch(`${server!.url}${path}`);
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  };

  it('fails a plugin folder added while serving whose section breaks its schema, naming the key; the others keep serving', async () => {
    await start({ 'plugin.late-bad.size': 'huge', 'plugin.late-good.size': '9' });
    writePlugin(folder, configPlugin('late-bad', '1.0.0', SIZE_SCHEMA));
    await until(() => plugin('late-bad')?.state === 'failed', 10_000, 'late-bad to be tried');
    const error = plugin('late-bad')!.error!;
    assert.match(error, /plugin\.late-bad\.size/, error);
    assert.match(error, /integer/, error);
    assert.match(error, /huge/, error);
    assert.equal((await get('/late-bad/config')).status, 404, 'a failed plugin contributes nothing');
    assert.deepEqual(await get('/svc/version'), { status: 200, body: { version: '1.0.0', tag: 'svc@1.0.0' } });

    writePlugin(folder, configPlugin('late-good', '1.0.0', SIZE_SCHEMA));
    await until(() => plugin('late-good')?.state === 'active', 10_000, 'late-good to activate');
    const expected = { size: 9, name: 'x' };
    assert.deepEqual(await get('/late-good/config'), { status: 200, body: { version: '1.0.0', config: expected } });
    assert.deepEqual(server!.kernel.config.get('plugin.late-good'), expected, 'the effective config shows it too');
    assert.equal(server!.kernel.config.sources().get('plugin.late-good.name')?.kind, 'default');
    assert.equal((await get('/svc/version')).status, 200);
  });

  it('applies the schema of a version reloaded through the admin API: new defaults filled, a refused section keeps the old version', async () => {
    writePlugin(folder, configPlugin('late', '1.0.0', SIZE_SCHEMA));
    const adminKey = 'admin-key-for-the-reload-test';
    await start({ 'plugin.late.size': '9', 'plugins.watch': false, 'auth.adminKey': adminKey });
    assert.deepEqual((await get('/late/config')).body, { version: '1.0.0', config: { size: 9, name: 'x' } });
    const reload = async () => {
      const res = await fetch(`${server!.url}/admin/plugins/late/reload`, {
        method: 'POST',
        headers: { authorization: `Bearer ${adminKey}` },
      });
      return { status: res.status, body: (await res.json()) as { error?: { code: string; message: string } } };
    };

    const withMode = {
      ...SIZE_SCHEMA,
      properties: { ...SIZE_SCHEMA.properties, mode: { type: 'string', default: 'fast', description: 'How.' } },
    };
    writePlugin(folder, configPlugin('late', '1.1.0', withMode));
    assert.equal((await reload()).status, 200);
    assert.deepEqual((await get('/late/config')).body, {
      version: '1.1.0',
      config: { size: 9, name: 'x', mode: 'fast' },
    });

    const smaller = { ...withMode, properties: { ...withMode.properties, size: { type: 'integer', maximum: 5 } } };
    writePlugin(folder, configPlugin('late', '1.2.0', smaller));
    const refused = await reload();
    assert.equal(refused.status, 422);
    assert.equal(refused.body.error?.code, 'plugin_reload_failed');
    assert.match(refused.body.error!.message, /version 1\.1\.0 keeps running/);
    assert.match(refused.body.error!.message, /plugin\.late\.size must be an integer at most 5; got 9/);
    assert.equal(plugin('late')!.state, 'active');
    assert.deepEqual((await get('/late/config')).body, {
      version: '1.1.0',
      config: { size: 9, name: 'x', mode: 'fast' },
    });
    assert.deepEqual(server!.kernel.config.get('plugin.late'), { size: 9, name: 'x', mode: 'fast' });
    assert.equal((await get('/svc/version')).status, 200);
  });
});
