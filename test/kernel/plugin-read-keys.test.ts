import { strict as assert } from 'node:assert';
import { join } from 'node:path';
import { Kernel } from '@nucleus/core';
import { REPO_ROOT } from '../helpers/paths.js';

/** The warnings a kernel logs as it is created, with the shipped plugins or none. */
function startWarnings(cli: Record<string, unknown>, pluginFolders = [join(REPO_ROOT, 'plugins')]): string[] {
  const lines: string[] = [];
  Kernel.create({
    env: {},
    pluginFolders,
    nodeModules: [],
    cli: { 'logging.level': 'warn', 'plugins.watch': false, ...cli },
    logDestination: { write: (line: string) => void lines.push(line) },
  });
  return lines.map((line) => JSON.parse(line) as { level: string; msg: string }).map((l) => `${l.level}: ${l.msg}`);
}

describe('keys a plugin reads, set while it will not run', () => {
  it('warns at start-up that tuning.enabled does nothing while the tuner is disabled or absent', () => {
    assert.deepEqual(startWarnings({ 'tuning.enabled': true, 'plugins.disabled': ['tuner'] }), [
      'warn: tuning.enabled is true (from command line) but plugin "tuner", which reads it, is disabled ' +
        '(plugins.disabled): it does nothing',
    ]);
    assert.deepEqual(startWarnings({ 'tuning.enabled': true }, []), [
      'warn: tuning.enabled is true (from command line) but no plugin "tuner" is installed: it does nothing',
    ]);
  });

  it('says nothing when the plugin runs, or when the key keeps its default', () => {
    assert.deepEqual(startWarnings({ 'tuning.enabled': true }), []);
    assert.deepEqual(startWarnings({ 'plugins.disabled': ['tuner'] }), []);
  });
});
