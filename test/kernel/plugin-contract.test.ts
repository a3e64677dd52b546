import { strict as assert } from 'node:assert';
import { rmSync } from 'node:fs';
import { Writable } from 'node:stream';
import { Kernel, RouteConflictError } from '@nucleus/core';
import { startTestKernel, type TestKernel } from '@nucleus/sdk/testing';
import { tempDir } from '../helpers/paths.js';
import { writePlugin } from '../helpers/plugin-fixtures.js';

/**
 * A plugin contributing `GET <path>`, named `<group>/…` when a group is given, answering with its own id and version.
 */
function route(path: string, group?: string): string {
  return `ctx.contribute(ExtensionPoints.routes, { method: 'GET', path: '${path}', access: 'public',
    handler: () => ({ plugin: ctx.id, version: ctx.version }) }${group ? `, { name: '${group}/GET ${path}' }` : ''});`;
}

/** A kernel (no engine, no server) over `folder`, with its log lines kept. */
function kernelOn(folder: string): { kernel: Kernel; log: Array<Record<string, unknown>> } {
  const log: Array<Record<string, unknown>> = [];
  const logDestination = new Writable({
    write(chunk, _encoding, done) {
      for (const line of String(chunk).split('\n')) if (line) log.push(JSON.parse(line));
      done();
    },
  });
  const kernel = Kernel.create({
    env: {},
    pluginFolders: [folder],
    nodeModules: [],
    cli: { 'plugins.watch': false, 'logging.level': 'warn', 'logging.format': 'json' },
    logDestination,
  });
  return { kernel, log };
}

describe('plugin contracts: provides and routes', () => {
  let folder: string;
  let kernel: Kernel | undefined;
  beforeEach(() => (folder = tempDir('contract')));
  afterEach(async () => {
    await kernel?.stop();
    kernel = undefined;
    rmSync(folder, { recursive: true, force: true });
  });

  it('fails a plugin that declares what it does not contribute, naming the entry; one that keeps its word is active', async () => {
    writePlugin(folder, {
      id: 'liar',
      manifest: { provides: ['routes:greeting', 'cachePolicy:lfu'] },
      activate: route('/liar/greeting', 'greeting'),
    });
    writePlugin(folder, {
      id: 'honest',
      manifest: { provides: ['routes:greeting', 'exporter:audit'] },
      activate: `${route('/honest/hello', 'greeting')} ${route('/honest/bye', 'greeting')}
        ctx.contribute(ExtensionPoints.exporter, { name: 'audit' });`,
    });
    ({ kernel } = kernelOn(folder));
    await kernel.start();
    const liar = kernel.plugins.get('liar');
    assert.equal(liar.state, 'failed');
    assert.match(liar.error!, /provides "cachePolicy:lfu", but activate\(\) contributed no such thing/);
    assert.match(liar.error!, /it contributed routes:greeting\/GET \/liar\/greeting/);
    // Nothing of a plugin that failed its contract is published.
    assert.deepEqual(
      kernel.extensions
        .point('routes')
        .list()
        .map((c) => c.pluginId),
      ['honest', 'honest'],
    );
    assert.equal(kernel.plugins.get('honest').state, 'active');
  });

  it('warns, naming them, about contributions to kernel points the manifest does not declare, and activates the plugin', async () => {
    writePlugin(folder, {
      id: 'quiet',
      manifest: { provides: ['routes:quiet'] },
      activate: `${route('/quiet/a', 'quiet')} ctx.contribute(ExtensionPoints.exporter, { name: 'sneaky' });
        ctx.contribute({ id: 'quiet.own' }, { name: 'free' });`,
    });
    let log: Array<Record<string, unknown>>;
    ({ kernel, log } = kernelOn(folder));
    await kernel.start();
    assert.equal(kernel.plugins.get('quiet').state, 'active');
    const warning = log.find((l) => l.id === 'quiet' && Array.isArray(l.undeclared));
    // A point of the plugin's own is not the kernel's to police.
    assert.deepEqual(warning?.undeclared, ['exporter:sneaky']);
    assert.match(String(warning?.msg), /list them in "provides"/);
  });

  it('refuses to start when two plugins contribute one route, naming both', async () => {
    writePlugin(folder, { id: 'first', activate: route('/shared/:model') });
    writePlugin(folder, { id: 'second', activate: `${route('/second/own')} ${route('/shared/:name')}` });
    writePlugin(folder, { id: 'bystander', activate: route('/bystander') });
    const { kernel: k } = kernelOn(folder);
    await assert.rejects(k.start(), (err: Error) => {
      assert.ok(err instanceof RouteConflictError, String(err));
      assert.match(
        err.message,
        /route GET \/shared\/:name is contributed by both plugin "first" \(1\.0\.0\) and plugin "second"/,
      );
      return true;
    });
    // Start-up undid itself: nothing stays active or published.
    assert.deepEqual(
      k.plugins.list().map((p) => [p.id, p.state]),
      [
        ['bystander', 'inactive'],
        ['first', 'inactive'],
        ['second', 'failed'],
      ],
    );
    assert.equal(k.extensions.point('routes').list().length, 0);
  });
});

describe('plugin contracts at hot reload', () => {
  let dir: string;
  let kit: TestKernel;
  before(async () => {
    dir = tempDir('contract-reload');
    writePlugin(`${dir}/plugins`, { id: 'owner', activate: route('/owned') });
    writePlugin(`${dir}/plugins`, { id: 'neighbour', activate: route('/neighbour') });
    kit = await startTestKernel({ plugins: [`${dir}/plugins`], builtinModels: false, modelPlugins: false });
  });
  after(async () => {
    await kit.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('fails a new version that takes another plugin’s route, and the old version keeps serving', async () => {
    writePlugin(`${dir}/plugins`, { id: 'neighbour', version: '2.0.0', activate: route('/owned') });
    await assert.rejects(kit.kernel.plugins.reload('neighbour'), (err: Error & { status?: number }) => {
      assert.equal(err.status, 422);
      assert.match(err.message, /version 1\.0\.0 keeps running/);
      assert.match(
        err.message,
        /route GET \/owned is contributed by both plugin "owner" \(1\.0\.0\) and plugin "neighbour" \(2\.0\.0\)/,
      );
      return true;
    });
    assert.deepEqual((await kit.request('/neighbour')).body, { plugin: 'neighbour', version: '1.0.0' });
    assert.deepEqual((await kit.request('/owned')).body, { plugin: 'owner', version: '1.0.0' });

    // Its own routes moving between its versions are no conflict.
    writePlugin(`${dir}/plugins`, { id: 'neighbour', version: '2.0.1', activate: route('/neighbour') });
    assert.equal((await kit.kernel.plugins.reload('neighbour')).state, 'active');
    assert.deepEqual((await kit.request('/neighbour')).body, { plugin: 'neighbour', version: '2.0.1' });
  });
});
