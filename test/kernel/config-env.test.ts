import assert from 'node:assert/strict';
import {
  CORE_CONFIG_SCHEMA,
  coerceString,
  ConfigError,
  configKeys,
  configSchemaWithPlugins,
  envName,
  envNameTable,
  loadConfig,
} from '@nucleus/core/kernel/config';
import { CPU_SCHEMA } from './config-fixtures.js';

describe('config env names', () => {
  it('turns key paths into upper snake case', () => {
    assert.equal(envName('server.port'), 'NUCLEUS_SERVER_PORT');
    assert.equal(envName('queue.highWatermark'), 'NUCLEUS_QUEUE_HIGH_WATERMARK');
    assert.equal(envName('batching.maxQueueDelayMs'), 'NUCLEUS_BATCHING_MAX_QUEUE_DELAY_MS');
    assert.equal(envName('plugin.backend-cpu.intraOpNumThreads'), 'NUCLEUS_PLUGIN_BACKEND_CPU_INTRA_OP_NUM_THREADS');
    assert.equal(envName('plugin.x.HTTPProxyUrl'), 'NUCLEUS_PLUGIN_X_HTTP_PROXY_URL');
    assert.equal(envName('plugin.quant-int8.fp16Enabled'), 'NUCLEUS_PLUGIN_QUANT_INT8_FP16_ENABLED');
  });

  it('maps every env name back to exactly one key', () => {
    const keys = configKeys(configSchemaWithPlugins({ 'backend-cpu': CPU_SCHEMA }));
    const table = envNameTable(keys);
    assert.equal(table.byName.get('NUCLEUS_QUEUE_HIGH_WATERMARK')?.path, 'queue.highWatermark');
    assert.equal(
      table.byName.get('NUCLEUS_PLUGIN_BACKEND_CPU_INTRA_OP_NUM_THREADS')?.path,
      'plugin.backend-cpu.intraOpNumThreads',
    );
    assert.equal(table.byName.get('NUCLEUS_ADMIN_KEY')?.path, 'auth.adminKey');
    assert.equal(table.byName.get('NUCLEUS_AUTH_ADMIN_KEY')?.path, 'auth.adminKey');
    assert.equal(table.ambiguous.size, 0);
    assert.equal(table.byName.size, keys.length + 1);
  });

  it('sets a plugin key from its env var, read as the schema type', () => {
    const { config, sources } = loadConfig({
      env: { NUCLEUS_PLUGIN_BACKEND_CPU_INTRA_OP_NUM_THREADS: '4', NUCLEUS_PLUGIN_BACKEND_CPU_ALLOW_SPINNING: '0' },
      pluginSchemas: { 'backend-cpu': CPU_SCHEMA },
    });
    assert.equal(config.plugin['backend-cpu']?.intraOpNumThreads, 4);
    assert.equal(config.plugin['backend-cpu']?.allowSpinning, false);
    assert.deepEqual(sources.get('plugin.backend-cpu.intraOpNumThreads'), {
      kind: 'env',
      name: 'NUCLEUS_PLUGIN_BACKEND_CPU_INTRA_OP_NUM_THREADS',
    });
  });

  it('refuses an env name two plugin keys map to, naming both', () => {
    const pluginSchemas = {
      'a-b': { type: 'object', properties: { c: { type: 'string' } } },
      a: { type: 'object', properties: { 'b-c': { type: 'string' } } },
    } as const;
    assert.deepEqual(
      [...envNameTable(configKeys(configSchemaWithPlugins(pluginSchemas))).ambiguous.keys()],
      ['NUCLEUS_PLUGIN_A_B_C'],
    );
    assert.throws(
      () => loadConfig({ env: { NUCLEUS_PLUGIN_A_B_C: 'x' }, pluginSchemas }),
      (err: unknown) =>
        err instanceof ConfigError &&
        /NUCLEUS_PLUGIN_A_B_C could mean any of plugin\.a-b\.c, plugin\.a\.b-c/.test(err.message),
    );
  });

  it('reads the admin key from its short alias, the canonical name winning when both are set', () => {
    const key = 'admin-key-0123456789abcdef';
    assert.equal(loadConfig({ env: { NUCLEUS_ADMIN_KEY: key } }).config.auth.adminKey, key);
    const both = loadConfig({ env: { NUCLEUS_ADMIN_KEY: key, NUCLEUS_AUTH_ADMIN_KEY: key.toUpperCase() } });
    assert.equal(both.config.auth.adminKey, key.toUpperCase());
    assert.deepEqual(both.sources.get('auth.adminKey'), { kind: 'env', name: 'NUCLEUS_AUTH_ADMIN_KEY' });
    assert.match(both.warnings[0]!, /NUCLEUS_ADMIN_KEY and NUCLEUS_AUTH_ADMIN_KEY both set auth\.adminKey/);
  });

  it('coerces env strings: numbers, booleans, JSON and comma lists', () => {
    const { config } = loadConfig({
      env: {
        NUCLEUS_BATCHING_MAX_QUEUE_DELAY_MS: '2.5',
        NUCLEUS_PLUGINS_WATCH: 'false',
        NUCLEUS_LOGGING_LOG_PAYLOADS: '1',
        NUCLEUS_PLUGINS_DISABLED: 'metrics, quant-int8',
        NUCLEUS_PLUGINS_DIRS: '["/opt/a","/opt/b"]',
        NUCLEUS_AUTH_KEYS: '[{"key":"user-key-0123456789abcdef","role":"user"}]',
        NUCLEUS_MODELS: '[{"name":"tiny","path":"/m/tiny.onnx","warmup":2}]',
      },
    });
    assert.equal(config.batching.maxQueueDelayMs, 2.5);
    assert.equal(config.plugins.watch, false);
    assert.equal(config.logging.logPayloads, true);
    assert.deepEqual(config.plugins.disabled, ['metrics', 'quant-int8']);
    assert.deepEqual(config.plugins.dirs, ['/opt/a', '/opt/b']);
    assert.deepEqual(config.auth.keys, [{ key: 'user-key-0123456789abcdef', role: 'user' }]);
    assert.deepEqual(config.models, [{ name: 'tiny', path: '/m/tiny.onnx', warmup: 2 }]);
  });

  it('names the variable whose JSON is broken', () => {
    assert.throws(
      () => loadConfig({ env: { NUCLEUS_MODELS: '[{"name": "tiny",}]' } }),
      (err: unknown) =>
        err instanceof ConfigError &&
        err.issues.length === 1 &&
        err.issues[0]!.message.startsWith(
          'models must be an array of objects written as JSON; got "[{\\"name\\": \\"tiny\\",}]" from env NUCLEUS_MODELS, which is not valid JSON (',
        ),
    );
  });

  it('coerces by schema type and refuses what does not fit', () => {
    const integer = { type: 'integer' } as const;
    assert.deepEqual(coerceString('42', integer), { ok: true, value: 42 });
    assert.deepEqual(coerceString('1.5', integer), { ok: false });
    assert.deepEqual(coerceString('', integer), { ok: false });
    assert.deepEqual(coerceString('1.5', { type: 'number' }), { ok: true, value: 1.5 });
    assert.deepEqual(coerceString('TRUE', { type: 'boolean' }), { ok: true, value: true });
    assert.deepEqual(coerceString('0', { type: 'boolean' }), { ok: true, value: false });
    assert.deepEqual(coerceString('yes', { type: 'boolean' }), { ok: false });
    // With both allowed, a digit is a number: `warmup: 1` means one run.
    assert.deepEqual(coerceString('1', { type: ['boolean', 'integer'] }), { ok: true, value: 1 });
    assert.deepEqual(coerceString('true', { type: ['boolean', 'integer'] }), { ok: true, value: true });
    assert.deepEqual(coerceString('null', { type: ['string', 'null'] }), { ok: true, value: 'null' });
    assert.deepEqual(coerceString('null', { type: ['integer', 'null'] }), { ok: true, value: null });
    assert.deepEqual(coerceString(' 8080 ', CORE_CONFIG_SCHEMA.properties.server.properties.port), {
      ok: true,
      value: 8080,
    });
    assert.deepEqual(coerceString('{"a":1}', { type: 'object' }), { ok: true, value: { a: 1 } });
    assert.equal(coerceString('{a:1}', { type: 'object' }).ok, false);
  });
});
