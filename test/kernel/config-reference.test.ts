import assert from 'node:assert/strict';
import {
  CORE_CONFIG_SCHEMA,
  configKeys,
  configSchemaWithPlugins,
  envName,
  loadConfig,
  renderConfigReference,
  type JsonSchema,
  type NucleusConfig,
} from '@nucleus/core/kernel/config';
import { CPU_SCHEMA } from './config-fixtures.js';

describe('config schema and reference', () => {
  it('gives every core key a description and a default', () => {
    const keys = configKeys(CORE_CONFIG_SCHEMA);
    assert.equal(
      keys.length,
      98,
      'the documented keys (server with tls, defaultModel, processes and drainDelayMs, auth with jwt, plugins, ' +
        'ws, backend, models, allowedModelRoots, queue, scheduler, batching, cache.dir, cache.prefix, breaker with ' +
        'load back-off, memory, startup, workers with shareBelowBytes, logging, tuning with its bounds) and no more',
    );
    for (const key of keys) {
      assert.ok(
        typeof key.schema.description === 'string' && key.schema.description.length > 0,
        `${key.path} has no description`,
      );
      assert.ok('default' in key.schema, `${key.path} has no default`);
    }
  });

  it('lists every key in the reference table with its env var, type, default and runtime mark', () => {
    const schema = configSchemaWithPlugins({ 'backend-cpu': CPU_SCHEMA });
    const table = renderConfigReference(schema);
    const rows = new Map(
      table
        .split('\n')
        .filter((line) => line.startsWith('| `'))
        .map((line) => [/^\| `([^`]+)`/.exec(line)![1]!, line]),
    );
    for (const key of configKeys(schema)) {
      const row = rows.get(key.path);
      assert.ok(row !== undefined, `${key.path} is missing from the reference`);
      assert.ok(row.includes(`\`${envName(key.path)}\``), `${key.path}: no env var in ${row}`);
      const cells = row.split(/(?<!\\)\|/).map((cell) => cell.trim());
      assert.equal(cells[5], key.runtime ? 'yes' : '', `${key.path}: runtime column`);
      if (key.schema.default !== undefined)
        assert.equal(cells[4], `\`${JSON.stringify(key.schema.default)}\``, `${key.path}: default column`);
    }
    assert.match(
      rows.get('server.port')!,
      /^\| `server\.port` \| `NUCLEUS_SERVER_PORT` \| integer \(≥ 0, ≤ 65535\) \| `8080` \| {2}\| TCP port to listen on; 0 picks a free port\. \|$/,
    );
    assert.match(rows.get('auth.adminKey')!, /`NUCLEUS_AUTH_ADMIN_KEY`<br>`NUCLEUS_ADMIN_KEY` \| string \\\| null/);
    assert.match(rows.get('logging.level')!, /"trace" \\\| "debug"/);
    assert.match(rows.get('models[].name')!, /Required\. Name the API serves the model under\./);
    assert.match(rows.get('auth.keys[].key')!, /Secret: shown as `\*\*\*`\./);
    assert.ok(rows.has('plugin.backend-cpu.intraOpNumThreads'));
  });

  it('derives a NucleusConfig type that matches what the loader returns', () => {
    const config: NucleusConfig = loadConfig({ env: {} }).config;
    const port: number = config.server.port;
    const level: 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal' | 'silent' = config.logging.level;
    const repo: string | null = config.modelRepository;
    const firstModelBackend: string | undefined = config.models[0]?.backend;
    const pluginSection: Record<string, unknown> | undefined = config.plugin['backend-cpu'];
    // @ts-expect-error a key the schema does not have is not in the type
    void config.server.prot;
    assert.deepEqual([port, level, repo, firstModelBackend, pluginSection], [8080, 'info', null, undefined, undefined]);
  });

  it('keeps annotations out of the way of plain JSON Schema tools', () => {
    const schema: JsonSchema = configSchemaWithPlugins({});
    assert.equal(schema.$schema, 'http://json-schema.org/draft-07/schema#');
    assert.notEqual(schema, configSchemaWithPlugins({}), 'each call returns a fresh copy');
  });
});
