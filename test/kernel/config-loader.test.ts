import assert from 'node:assert/strict';
import { join } from 'node:path';
import { ConfigError, loadConfig, type LoadConfigOptions } from '@nucleus/core/kernel/config';
import { CPU_SCHEMA, FIXTURE_DIR, fixture } from './config-fixtures.js';

function configError(options: LoadConfigOptions): ConfigError {
  try {
    loadConfig(options);
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected a ConfigError, got ${String(err)}`);
    return err;
  }
  assert.fail('the config loaded but should not have');
}

describe('config loader', () => {
  it('uses the documented defaults when nothing is set', () => {
    const { config, sources, warnings } = loadConfig({ env: {} });
    assert.equal(config.server.host, '127.0.0.1');
    assert.equal(config.server.port, 8080);
    assert.equal(config.server.bodyLimitBytes, 10 * 1024 * 1024);
    assert.equal(config.backend, 'auto');
    assert.deepEqual(config.models, []);
    assert.equal(config.modelRepository, null);
    assert.equal(config.queue.highWatermark, 1000);
    assert.equal(config.queue.lowWatermark, 500);
    assert.equal(config.scheduler.strategy, 'priority');
    assert.equal(config.logging.level, 'info');
    assert.equal(config.plugins.watch, true);
    assert.equal(config.workers.perModel, 1);
    assert.deepEqual(sources.get('server.port'), { kind: 'default' });
    assert.deepEqual(warnings, []);
  });

  it('layers file < env < CLI and records where each value came from', () => {
    const file = fixture('nucleus.yaml');
    const { config, sources } = loadConfig({
      file,
      env: { NUCLEUS_SERVER_PORT: '7100', NUCLEUS_LOGGING_LEVEL: 'warn', PATH: '/usr/bin' },
      cli: { 'server.port': 7200 },
      pluginSchemas: { 'backend-cpu': CPU_SCHEMA },
    });
    assert.equal(config.server.port, 7200);
    assert.deepEqual(sources.get('server.port'), { kind: 'cli' });
    assert.equal(config.logging.level, 'warn');
    assert.deepEqual(sources.get('logging.level'), { kind: 'env', name: 'NUCLEUS_LOGGING_LEVEL' });
    assert.equal(config.server.host, '0.0.0.0');
    assert.deepEqual(sources.get('server.host'), { kind: 'file', name: file, line: 3 });
    assert.equal(config.server.bodyLimitBytes, 10 * 1024 * 1024);
    assert.deepEqual(sources.get('server.bodyLimitBytes'), { kind: 'default' });
    assert.equal(config.plugin['backend-cpu']?.intraOpNumThreads, 2);
    assert.equal(config.plugin['backend-cpu']?.graphOptimizationLevel, 'all');
    assert.deepEqual(sources.get('plugin.backend-cpu.graphOptimizationLevel'), { kind: 'default' });
  });

  it('reads a JSON file to the same config as the YAML one', () => {
    const fromYaml = loadConfig({
      file: fixture('nucleus.yaml'),
      env: {},
      pluginSchemas: { 'backend-cpu': CPU_SCHEMA },
    });
    const fromJson = loadConfig({
      file: fixture('nucleus.json'),
      env: {},
      pluginSchemas: { 'backend-cpu': CPU_SCHEMA },
    });
    assert.deepEqual(fromJson.config, fromYaml.config);
    assert.equal(fromJson.sources.get('logging.format')?.kind, 'file');
    assert.equal(fromJson.sources.get('logging.format')?.line, 3);
  });

  it('resolves relative paths in the file against its folder, and from env against cwd', () => {
    const { config } = loadConfig({
      file: fixture('nucleus.yaml'),
      env: { NUCLEUS_MODEL_REPOSITORY: 'repo' },
      cwd: '/srv/nucleus',
    });
    assert.equal(config.models[0]?.path, join(FIXTURE_DIR, 'models/tiny.onnx'));
    assert.deepEqual(config.plugins.dirs, [join(FIXTURE_DIR, 'extra-plugins')]);
    assert.equal(config.modelRepository, '/srv/nucleus/repo');
  });

  it('reads the file named by NUCLEUS_CONFIG when no file is given', () => {
    const { config } = loadConfig({ env: { NUCLEUS_CONFIG: fixture('nucleus.json') } });
    assert.equal(config.server.port, 7000);
  });

  it('treats an empty file and empty sections as "all defaults"', () => {
    const { config } = loadConfig({ file: fixture('empty.yaml'), env: {} });
    assert.equal(config.server.port, 8080);
    assert.deepEqual(config.plugin, {});
  });

  it('says which file is missing', () => {
    const err = configError({ file: fixture('nope.yaml'), env: {} });
    assert.match(err.message, /config file .*nope\.yaml not found/);
    assert.equal(err.issues[0]?.source.kind, 'file');
  });

  it('says which env var named a missing file', () => {
    const err = configError({ env: { NUCLEUS_CONFIG: '/nowhere/nucleus.yaml' } });
    assert.match(err.message, /\/nowhere\/nucleus\.yaml \(named by env NUCLEUS_CONFIG\) not found/);
  });

  it('gives the line of a YAML syntax error', () => {
    const err = configError({ file: fixture('bad-syntax.yaml'), env: {} });
    assert.match(err.message, /bad-syntax\.yaml: .*line 3, column 9/);
    assert.equal(err.issues[0]?.source.line, 3);
  });

  it('gives the line of a JSON syntax error', () => {
    const err = configError({ file: fixture('bad-syntax.json'), env: {} });
    assert.match(err.message, /bad-syntax\.json is not valid JSON at line 4, column 3/);
  });

  it('refuses a file whose top level is not a mapping', () => {
    const err = configError({ file: fixture('list.yaml'), env: {} });
    assert.match(err.message, /must hold a mapping of keys at the top level/);
  });

  it('names the key, the expectation and the source of an invalid env value', () => {
    const err = configError({ env: { NUCLEUS_SERVER_PORT: 'abc' } });
    assert.equal(err.issues.length, 1);
    assert.equal(
      err.issues[0]?.message,
      'server.port must be an integer from 0 to 65535; got "abc" from env NUCLEUS_SERVER_PORT',
    );
    assert.equal(err.issues[0]?.path, 'server.port');
    assert.deepEqual(err.issues[0]?.source, { kind: 'env', name: 'NUCLEUS_SERVER_PORT' });
    assert.equal(
      err.message,
      'Invalid configuration: server.port must be an integer from 0 to 65535; got "abc" from env NUCLEUS_SERVER_PORT',
    );
  });

  it('reports a value that parses but is out of range, from the command line', () => {
    const err = configError({ env: {}, cli: { 'server.port': '70000' } });
    assert.equal(err.issues[0]?.message, 'server.port must be an integer from 0 to 65535; got 70000 from command line');
  });

  it('lists every problem in the file at once, with lines', () => {
    const file = fixture('invalid.yaml');
    const err = configError({ file, env: {} });
    const messages = err.issues.map((issue) => issue.message);
    assert.ok(
      messages.includes(
        `logging.level must be one of "trace", "debug", "info", "warn", "error", "fatal", "silent"; got "loud" from file ${file}:4`,
      ),
      messages.join('\n'),
    );
    assert.ok(
      messages.includes(`sever is not a config key (did you mean "server"?); found in file ${file}:5`),
      messages.join('\n'),
    );
    assert.ok(messages.includes(`models.0.path is required; missing in file ${file}:8`), messages.join('\n'));
    assert.ok(
      messages.includes(`models.0.maxBatchSize must be an integer at least 1; got 0 from file ${file}:9`),
      messages.join('\n'),
    );
    assert.equal(err.issues.length, 4);
    assert.match(err.message, /^Invalid configuration \(4 problems\):\n {2}- /);
  });

  it('refuses an unknown key from the command line', () => {
    const err = configError({ env: {}, cli: { 'server.prot': '9000' } });
    assert.equal(
      err.issues[0]?.message,
      'server.prot is not a config key (did you mean "server.port"?); found in command line',
    );
  });

  it('refuses a path inside a key that is set as a whole', () => {
    const err = configError({ env: {}, cli: { 'auth.keys.0.key': 'x' } });
    assert.match(err.issues[0]!.message, /auth\.keys\.0\.key is inside the key auth\.keys/);
  });

  it('checks rules that span keys', () => {
    const err = configError({ env: { NUCLEUS_QUEUE_LOW_WATERMARK: '1000' } });
    assert.equal(
      err.issues[0]?.message,
      'queue.lowWatermark (1000) must be below queue.highWatermark (1000) (queue.lowWatermark from env ' +
        'NUCLEUS_QUEUE_LOW_WATERMARK, queue.highWatermark from default)',
    );
    assert.deepEqual(err.issues[0]?.source, { kind: 'env', name: 'NUCLEUS_QUEUE_LOW_WATERMARK' });
    const twice = configError({
      env: {},
      cli: {
        models: [
          { name: 'a', path: '/m' },
          { name: 'a', path: '/n' },
        ],
      },
    });
    assert.match(twice.issues[0]!.message, /model "a" is listed twice/);
  });

  it('warns about, but accepts, a NUCLEUS_ variable that is no key', () => {
    const { warnings } = loadConfig({ env: { NUCLEUS_SERVER_PROT: '1', NUCLEUS_CONFIG: '' } });
    assert.equal(warnings.length, 1);
    assert.match(warnings[0]!, /^NUCLEUS_SERVER_PROT is not the env var of any config key/);
  });

  it('keeps the section of a plugin it has no schema for, with a warning', () => {
    const { config, warnings } = loadConfig({ file: fixture('nucleus.yaml'), env: {} });
    assert.deepEqual(config.plugin['backend-cpu'], { intraOpNumThreads: 2 });
    assert.equal(warnings.length, 1);
    assert.match(warnings[0]!, /plugin\.backend-cpu is set .* but no plugin "backend-cpu" is known/);
    const quiet = loadConfig({
      file: fixture('nucleus.yaml'),
      env: { NUCLEUS_PLUGIN_X_Y: '1' },
      ignoreUnknownPluginSections: true,
    });
    assert.deepEqual(quiet.warnings, []);
  });

  it('validates plugin sections against their schemas', () => {
    const err = configError({
      env: { NUCLEUS_PLUGIN_BACKEND_CPU_GRAPH_OPTIMIZATION_LEVEL: 'max' },
      pluginSchemas: { 'backend-cpu': CPU_SCHEMA },
    });
    assert.equal(
      err.issues[0]?.message,
      'plugin.backend-cpu.graphOptimizationLevel must be one of "disabled", "basic", "extended", "layout", ' +
        '"all"; got "max" from env NUCLEUS_PLUGIN_BACKEND_CPU_GRAPH_OPTIMIZATION_LEVEL',
    );
  });

  it('blames a broken plugin schema on its plugin', () => {
    const err = configError({
      env: {},
      pluginSchemas: { broken: { type: 'object', properties: { a: { type: 'integer', minimun: 1 } } } },
    });
    assert.match(err.issues[0]!.message, /plugin "broken" declares an invalid config schema: .*minimun/);
  });

  it('never repeats a secret in an error message', () => {
    const err = configError({ env: { NUCLEUS_AUTH_KEYS: '[{"key": "secret-secret-secret", "role": "root"}]' } });
    assert.match(err.issues[0]!.message, /^auth\.keys\.0\.role must be one of/);
    assert.doesNotMatch(err.message, /secret-secret/);
    const json = configError({ env: { NUCLEUS_AUTH_KEYS: '[{"key": "secret-secret-secret", role: "user"}]' } });
    assert.doesNotMatch(json.message, /secret-secret/);
    assert.match(
      json.message,
      /auth\.keys must be an array of objects written as JSON; got \*\*\* from env NUCLEUS_AUTH_KEYS, which is not valid JSON/,
    );
  });
});
