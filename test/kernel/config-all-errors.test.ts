import assert from 'node:assert/strict';
import { existsSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Kernel } from '@nucleus/core';
import { ConfigError, loadConfig, type LoadConfigOptions } from '@nucleus/core/kernel/config';
import { startTestKernel, type TestKernel } from '@nucleus/sdk/testing';
import { REPO_ROOT, tempDir } from '../helpers/paths.js';

function issuesOf(fn: () => unknown): string[] {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected a ConfigError, got ${String(err)}`);
    return err.issues.map((i) => i.message);
  }
  assert.fail('the config loaded but should not have');
}

const load = (options: LoadConfigOptions) => () => loadConfig(options);

describe('config: every problem at once', () => {
  let dir: string;
  before(() => {
    dir = tempDir('config-all');
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('reports a rule across keys together with a bad key in the file, naming where each side came from', () => {
    const file = join(dir, 'both.yaml');
    writeFileSync(file, 'server:\n  port: 99999\nqueue:\n  highWatermark: 100\n  lowWatermark: 200\n');
    const messages = issuesOf(load({ file, env: {} }));
    assert.deepEqual(messages, [
      `server.port must be an integer from 0 to 65535; got 99999 from file ${file}:2`,
      `queue.lowWatermark (200) must be below queue.highWatermark (100) (queue.lowWatermark from file ${file}:5, queue.highWatermark from file ${file}:4)`,
    ]);
  });

  it('says nothing about a rule across keys when one of its keys is already wrong on its own', () => {
    const messages = issuesOf(load({ env: {}, cli: { 'queue.lowWatermark': -1, 'queue.highWatermark': 0 } }));
    assert.equal(messages.length, 2, messages.join('\n'));
    assert.ok(
      messages.every((m) => !m.includes('must be below')),
      messages.join('\n'),
    );
  });

  it('survives a config so wrong the rules across keys cannot read it', () => {
    const messages = issuesOf(
      load({
        env: {},
        cli: { models: [null, 3, { name: 'a', path: '/m' }, { name: 'a', path: '/m' }], queue: { highWatermark: 'x' } },
      }),
    );
    assert.ok(
      messages.some((m) => m.startsWith('models.0 must be an object')),
      messages.join('\n'),
    );
    assert.ok(
      messages.some((m) => /model "a" is listed twice/.test(m)),
      messages.join('\n'),
    );
  });

  it('names the source of an unknown section set from the command line', () => {
    assert.deepEqual(issuesOf(load({ env: {}, cli: { 'nosuch.key': '1' } })), [
      'nosuch is not a config key; found in command line',
    ]);
  });

  it('reports bad core keys and bad plugin sections from one start, not one after the other', () => {
    const messages = issuesOf(() =>
      Kernel.create({
        env: { NUCLEUS_SERVER_PORT: 'abc' },
        cli: { 'plugin.backend-cpu.intraOpNumThreads': '-1', 'logging.level': 'loud' },
      }),
    );
    assert.ok(
      messages.some((m) =>
        m.startsWith('server.port must be an integer from 0 to 65535; got "abc" from env NUCLEUS_SERVER_PORT'),
      ),
      messages.join('\n'),
    );
    assert.ok(
      messages.some((m) => m.startsWith('logging.level must be one of')),
      messages.join('\n'),
    );
    assert.ok(
      messages.some((m) => m.startsWith('plugin.backend-cpu.intraOpNumThreads must be an integer at least 0')),
      messages.join('\n'),
    );
  });
});

describe('config: cache.dir', () => {
  it('is set by NUCLEUS_CACHE_DIR like any key, without a warning, and is null by default', () => {
    const set = loadConfig({ env: { NUCLEUS_CACHE_DIR: '/var/cache/nucleus' } });
    assert.equal(set.config.cache.dir, '/var/cache/nucleus');
    assert.deepEqual(set.sources.get('cache.dir'), { kind: 'env', name: 'NUCLEUS_CACHE_DIR' });
    assert.deepEqual(set.warnings, []);
    assert.equal(loadConfig({ env: {} }).config.cache.dir, null);
  });

  it('reads a relative folder from the command line against the working directory', () => {
    assert.equal(
      loadConfig({ env: {}, cli: { 'cache.dir': 'cache' }, cwd: '/srv/app' }).config.cache.dir,
      '/srv/app/cache',
    );
  });

  describe('in a running server', () => {
    let kit: TestKernel | undefined;
    let dir: string;
    before(async () => {
      dir = tempDir('cache-dir');
      kit = await startTestKernel({ config: { 'cache.dir': dir } });
    });
    after(async () => {
      await kit?.stop();
      rmSync(dir, { recursive: true, force: true });
    });

    it('generates and serves the built-in models from that folder', () => {
      const mlp = kit!.kernel.inference.get('mlp-classifier');
      assert.equal(mlp.state, 'ready');
      assert.ok(mlp.path.startsWith(dir), `${mlp.path} is under ${dir}`);
      assert.ok(existsSync(join(dir, 'mlp-classifier')), 'generated into cache.dir');
      assert.ok(!REPO_ROOT.startsWith(dir));
    });
  });
});

describe('PATCH /admin/config: every problem at once', () => {
  let kit: TestKernel | undefined;
  before(async () => {
    kit = await startTestKernel({ builtinModels: false, config: { 'auth.adminKey': 'admin-secret' } });
  });
  after(async () => kit?.stop());

  it('answers 400 naming the bad key and the broken rule across keys together, and changes nothing', async () => {
    const res = await kit!.request('/admin/config', {
      method: 'PATCH',
      body: { 'queue.highWatermark': 100, 'batching.maxBatchSize': 0 },
      headers: { authorization: 'Bearer admin-secret' },
    });
    assert.equal(res.status, 400);
    const { error } = res.body as { error: { code: string; message: string } };
    assert.equal(error.code, 'config_invalid');
    assert.match(
      error.message,
      /batching\.maxBatchSize must be an integer at least 1; got 0 from runtime patch by PATCH \/admin\/config/,
    );
    assert.match(error.message, /queue\.lowWatermark \(500\) must be below queue\.highWatermark \(100\)/);
    assert.equal(kit!.kernel.config.get('queue.highWatermark'), 1000);
  });
});
