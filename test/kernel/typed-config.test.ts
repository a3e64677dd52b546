import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { type ConfigPath, ConfigStore, type ConfigValue } from '@nucleus/core/kernel/config';
import { REPO_ROOT } from '../helpers/paths.js';
import { CPU_SCHEMA } from './config-fixtures.js';

// Compile-time equality: `Same<A, B>` is `true` only when A and B are the same type.
type Same<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
const sameType = <_Proof extends true>(): void => undefined;

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((d) => {
    const path = join(dir, d.name);
    if (d.isDirectory()) return sources(path);
    return d.name.endsWith('.ts') ? [path] : [];
  });
}

describe('typed config', () => {
  it('types config.get by its path, from the schema, with defaults filled', () => {
    const store = ConfigStore.load({ env: {}, cli: { 'server.port': '9090' } });
    const port: number = store.get('server.port');
    const dir: string | null = store.get('cache.dir');
    const level = store.get('logging.level');
    const firstModelWarmup = store.get('models')[0]?.warmup;
    sameType<Same<ConfigValue<'server.port'>, number>>();
    sameType<Same<ConfigValue<'cache.dir'>, string | null>>();
    sameType<Same<ConfigValue<'cache.prefix.maxBytes'>, number | null>>();
    sameType<Same<ConfigValue<'plugins.dirs'>, string[]>>();
    sameType<Same<typeof level, 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal' | 'silent'>>();
    sameType<Same<typeof firstModelWarmup, boolean | number | undefined>>();
    sameType<Same<ConfigValue<'cache.prefix'>['policy'], string>>();
    // A plugin's section is known only when its plugin is: it stays unknown.
    sameType<Same<ConfigValue<'plugin.backend-cpu.intraOpNumThreads'>, unknown>>();
    // @ts-expect-error a key the schema does not have is not a path
    const typo: ConfigPath = 'server.prot';
    // @ts-expect-error an array is read whole, not by index
    const index: ConfigPath = 'models.0';
    // @ts-expect-error what a plugin section holds is unknown, not a number
    const threads: number = store.get('plugin.backend-cpu.intraOpNumThreads');
    void [typo, index, threads];
    assert.deepEqual(
      [port, dir, level, firstModelWarmup, store.get('queue.highWatermark'), store.get('workers.routing')],
      [9090, null, 'info', undefined, 1000, 'least-loaded'],
      'every core key with a default reads its value, with no `?? default` at the call',
    );
  });

  it("reads a plugin's section with its schema's defaults once the schema is set", () => {
    const store = ConfigStore.load({ env: {}, cli: { 'plugin.backend-cpu.allowSpinning': 'false' } });
    assert.deepEqual(store.pluginSection('backend-cpu'), { allowSpinning: 'false' }, 'as given, until the schema');
    assert.deepEqual(store.pluginSection('absent'), {});
    store.setPluginSchema('backend-cpu', CPU_SCHEMA);
    const section = store.pluginSection('backend-cpu');
    assert.deepEqual(section, { intraOpNumThreads: 0, graphOptimizationLevel: 'all', allowSpinning: false });
    assert.equal(store.get('plugin.backend-cpu'), section);
  });

  it('keeps runtime values when a plugin brings the schema the store already holds', () => {
    const store = ConfigStore.load({ env: {}, pluginSchemas: { 'backend-cpu': CPU_SCHEMA } });
    store.patch({ 'plugin.backend-cpu.allowSpinning': true });
    store.setPluginSchema('backend-cpu', structuredClone(CPU_SCHEMA));
    assert.equal(store.get('plugin.backend-cpu.allowSpinning'), true, 'an equal schema changes nothing');
    store.setPluginSchema('backend-cpu', { ...CPU_SCHEMA, description: 'a later version' });
    assert.equal(store.get('plugin.backend-cpu.allowSpinning'), false, 'another schema starts from the layers');
  });

  it('leaves no cast and no restated default at a config.get call in core', () => {
    const cast = /config\.get\([^)]*\)( as [^)]*\))?\s*(as\b|\?\?\s*(\d|'|"|true\b|false\b|\[\]|\{\}))/;
    const found = sources(join(REPO_ROOT, 'core', 'src')).flatMap((file) =>
      readFileSync(file, 'utf8')
        .split('\n')
        .flatMap((line, i) => (cast.test(line) ? [`${relative(REPO_ROOT, file)}:${i + 1}: ${line.trim()}`] : [])),
    );
    assert.deepEqual(found, []);
    // The pattern finds what it looks for.
    assert.ok(cast.test("(this.options.config.get('batching.maxBatchSize') as number | undefined) ?? 32"));
    assert.ok(cast.test("this.options.config.get('workers.routing') ?? 'least-loaded'"));
    assert.ok(cast.test("kernel.config.get('server.port') as number"));
    assert.ok(
      !cast.test("kernel?.config.get('cache.dir') ?? defaultModelCacheDir()"),
      'null means "the default folder"',
    );
  });
});
