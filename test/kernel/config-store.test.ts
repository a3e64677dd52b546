import assert from 'node:assert/strict';
import { NucleusError } from '@nucleus/sdk';
import { ConfigError, ConfigStore, REDACTED } from '@nucleus/core/kernel/config';
import { CPU_SCHEMA, fixture } from './config-fixtures.js';

function refusal(fn: () => unknown): NucleusError {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof NucleusError, `expected a NucleusError, got ${String(err)}`);
    return err;
  }
  assert.fail('the patch was accepted but should not have been');
}

describe('config store', () => {
  let store: ConfigStore;
  let changes: [string, unknown, unknown][];

  beforeEach(() => {
    store = ConfigStore.load({ env: {}, pluginSchemas: { 'backend-cpu': CPU_SCHEMA } });
    changes = [];
    store.onChange((path, value, previous) => changes.push([path, value, previous]));
  });

  it('lists the runtime-adjustable keys', () => {
    assert.deepEqual(store.runtimeKeys(), [
      'server.jsonMaxDepth',
      'server.defaultModel',
      'auth.keys',
      'ws.maxConnections',
      'ws.maxConnectionsPerKey',
      'ws.maxBufferedBytes',
      'ws.maxDroppedMessages',
      'models',
      'queue.highWatermark',
      'queue.lowWatermark',
      'queue.timeoutMs',
      'scheduler.strategy',
      'scheduler.maxRunning',
      'scheduler.maxBatchSize',
      'batching.maxBatchSize',
      'batching.maxQueueDelayMs',
      'logging.level',
      'workers.perModel',
      'workers.routing',
      'workers.llmRouting',
      'workers.runTimeoutMs',
      'workers.heartbeatTimeoutMs',
      'workers.niceness',
      'workers.maxRestarts',
      'breaker.failureThreshold',
      'breaker.cooldownMs',
      'breaker.loadBackoffMs',
      'breaker.loadBackoffMaxMs',
      'memory.pressureFreeBytes',
      'memory.checkIntervalMs',
      'cache.prefix.maxBytes',
      'cache.prefix.shareAcrossKeys',
      'plugin.backend-cpu.allowSpinning',
    ]);
  });

  it('applies a flat patch to runtime keys and tells listeners about each change', () => {
    const applied = store.patch({ 'queue.highWatermark': 2000, 'logging.level': 'debug' }, 'admin-api');
    assert.deepEqual(applied, [
      { path: 'queue.highWatermark', value: 2000, previous: 1000 },
      { path: 'logging.level', value: 'debug', previous: 'info' },
    ]);
    assert.deepEqual(changes, [
      ['queue.highWatermark', 2000, 1000],
      ['logging.level', 'debug', 'info'],
    ]);
    assert.equal(store.get('queue.highWatermark'), 2000);
    assert.equal(store.snapshot().logging.level, 'debug');
    assert.deepEqual(store.sources().get('queue.highWatermark'), { kind: 'runtime', name: 'admin-api' });
  });

  it('accepts the nested form and plugin keys, and stays quiet about values that did not change', () => {
    store.patch(
      { scheduler: { strategy: 'fifo', maxRunning: 32 }, plugin: { 'backend-cpu': { allowSpinning: true } } },
      { kind: 'runtime', name: 'PATCH /admin/config' },
    );
    assert.deepEqual(changes, [
      ['scheduler.strategy', 'fifo', 'priority'],
      ['plugin.backend-cpu.allowSpinning', true, false],
    ]);
    assert.equal(store.get('plugin.backend-cpu.allowSpinning'), true);
    assert.deepEqual(store.sources().get('scheduler.maxRunning'), { kind: 'default' });
  });

  it('refuses keys that need a restart, naming them, and applies nothing', () => {
    const err = refusal(() =>
      store.patch({ 'queue.highWatermark': 2000, 'server.port': 9000, plugins: { watch: false } }),
    );
    assert.equal(err.status, 400);
    assert.equal(err.code, 'config_not_runtime_adjustable');
    assert.equal(err.param, 'server.port');
    assert.match(err.message, /not adjustable at runtime .*: server\.port, plugins\.watch\./);
    assert.equal(store.get('queue.highWatermark'), 1000);
    assert.deepEqual(changes, []);
  });

  it('refuses keys that do not exist', () => {
    const err = refusal(() => store.patch({ 'queue.highWatermrk': 2000 }));
    assert.equal(err.status, 400);
    assert.equal(err.code, 'config_unknown_key');
    assert.match(err.message, /not config keys: queue\.highWatermrk/);
  });

  it('refuses values the schema rejects, naming the key, and applies nothing', () => {
    const err = refusal(() => store.patch({ 'batching.maxBatchSize': 8, 'logging.level': 'loud' }, 'admin-api'));
    assert.equal(err.status, 400);
    assert.equal(err.code, 'config_invalid');
    assert.equal(err.param, 'logging.level');
    assert.match(err.message, /logging\.level must be one of "trace", .*; got "loud" from runtime patch by admin-api/);
    assert.equal(store.get('batching.maxBatchSize'), 32);
    assert.deepEqual(changes, []);
  });

  it('refuses a patch that breaks a rule spanning keys', () => {
    const err = refusal(() => store.patch({ 'queue.highWatermark': 100 }));
    assert.match(err.message, /queue\.lowWatermark \(500\) must be below queue\.highWatermark \(100\)/);
    store.patch({ queue: { highWatermark: 100, lowWatermark: 50 } });
    assert.equal(store.get('queue.lowWatermark'), 50);
  });

  it('hands out frozen config that a later patch does not change', () => {
    const before = store.snapshot();
    assert.ok(Object.isFrozen(before) && Object.isFrozen(before.queue) && Object.isFrozen(before.models));
    assert.throws(() => {
      (before.queue as { highWatermark: number }).highWatermark = 1;
    }, TypeError);
    store.patch({ 'queue.highWatermark': 3000 });
    assert.equal(before.queue.highWatermark, 1000);
    assert.equal(store.snapshot().queue.highWatermark, 3000);
  });

  it('keeps calling listeners when one throws, and reports the error', () => {
    const errors: string[] = [];
    const local = ConfigStore.load(
      { env: {} },
      { onListenerError: (error, path) => errors.push(`${path}: ${(error as Error).message}`) },
    );
    const seen: string[] = [];
    local.onChange(() => {
      throw new Error('boom');
    });
    const off = local.onChange((path) => seen.push(path));
    local.patch({ 'logging.level': 'warn' });
    assert.deepEqual(seen, ['logging.level']);
    assert.deepEqual(errors, ['logging.level: boom']);
    off();
    local.patch({ 'logging.level': 'error' });
    assert.deepEqual(seen, ['logging.level']);
  });

  it('redacts secrets for printing and leaves the real values in place', () => {
    const local = ConfigStore.load({
      file: fixture('secrets.yaml'),
      env: { NUCLEUS_PLUGIN_BACKEND_CPU_API_TOKEN: 'tok' },
      pluginSchemas: { 'backend-cpu': CPU_SCHEMA },
    });
    const shown = local.redacted();
    assert.equal(shown.auth.adminKey, REDACTED);
    assert.deepEqual(shown.auth.keys, [{ key: REDACTED, role: 'user', name: 'ci' }]);
    assert.equal(shown.plugin['backend-cpu']?.apiToken, REDACTED);
    assert.equal(local.get('auth.adminKey'), 'admin-key-0123456789abcdef');
    const text = JSON.stringify(local.entries());
    assert.doesNotMatch(text, /0123456789abcdef|"tok"/);
    const adminRow = local.entries().find((row) => row.path === 'auth.adminKey');
    assert.deepEqual(adminRow, {
      path: 'auth.adminKey',
      env: 'NUCLEUS_AUTH_ADMIN_KEY',
      value: REDACTED,
      source: { kind: 'file', name: fixture('secrets.yaml'), line: 2 },
      runtime: false,
    });
    assert.equal(ConfigStore.load({ env: {} }).redacted().auth.adminKey, null);
  });

  it('lists every key with a value, its env var and source, for config print', () => {
    const rows = store.entries();
    const port = rows.find((row) => row.path === 'server.port');
    assert.deepEqual(port, {
      path: 'server.port',
      env: 'NUCLEUS_SERVER_PORT',
      value: 8080,
      source: { kind: 'default' },
      runtime: false,
    });
    assert.equal(rows.find((row) => row.path === 'logging.level')?.runtime, true);
    assert.equal(rows[0]?.path, 'server.host');
  });

  it('applies a plugin schema that arrives later to the file, env and CLI values already read', () => {
    const local = ConfigStore.load({
      file: fixture('nucleus.yaml'),
      env: { NUCLEUS_PLUGIN_BACKEND_CPU_GRAPH_OPTIMIZATION_LEVEL: 'basic' },
      cli: { 'plugin.backend-cpu.allowSpinning': 'true' },
    });
    assert.deepEqual(local.get('plugin.backend-cpu'), { intraOpNumThreads: 2, allowSpinning: 'true' });
    local.patch({ 'logging.level': 'warn' });
    local.setPluginSchema('backend-cpu', CPU_SCHEMA);
    assert.deepEqual(local.get('plugin.backend-cpu'), {
      intraOpNumThreads: 2,
      graphOptimizationLevel: 'basic',
      allowSpinning: true,
    });
    assert.equal(local.sources().get('plugin.backend-cpu.intraOpNumThreads')?.kind, 'file');
    assert.equal(local.get('logging.level'), 'warn', 'runtime values survive');
    assert.ok(local.runtimeKeys().includes('plugin.backend-cpu.allowSpinning'));
    assert.deepEqual(local.warnings(), []);
  });

  it('refuses a plugin schema its section does not satisfy, and keeps the old state', () => {
    const local = ConfigStore.load({ file: fixture('nucleus.yaml'), env: {} });
    const strict = {
      type: 'object',
      additionalProperties: false,
      properties: { intraOpNumThreads: { type: 'integer', maximum: 1 } },
    } as const;
    assert.throws(
      () => local.setPluginSchema('backend-cpu', strict),
      (err: unknown) =>
        err instanceof ConfigError &&
        /plugin\.backend-cpu\.intraOpNumThreads must be an integer at most 1; got 2 from file .*nucleus\.yaml:20/.test(
          err.message,
        ),
    );
    assert.deepEqual(local.get('plugin.backend-cpu'), { intraOpNumThreads: 2 });
    assert.deepEqual(
      local.runtimeKeys().filter((key) => key.startsWith('plugin.')),
      [],
    );
  });
});
