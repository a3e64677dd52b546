import { strict as assert } from 'node:assert';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { REPO_ROOT } from '../helpers/paths.js';

// In a fresh process, since compiled schemas are cached for the life of one: counts the compiles of a config schema
// (core keys, plus the plugins' sections it holds) while a kernel is created with the shipped plugins.
const COUNT_COMPILES = `
import { createRequire } from 'node:module';
const require = createRequire(${JSON.stringify(join(REPO_ROOT, 'core/package.json'))});
const { Ajv } = await import(require.resolve('ajv'));
const compile = Ajv.prototype.compile;
const sections = [];
Ajv.prototype.compile = function (schema, meta) {
  if (schema?.properties?.server && schema.properties.plugins)
    sections.push(Object.keys(schema.properties.plugin?.properties ?? {}).length);
  return compile.call(this, schema, meta);
};
const { Kernel } = await import(${JSON.stringify(join(REPO_ROOT, 'core/dist/kernel/kernel.js'))});
Kernel.create({ env: {}, cli: { 'logging.level': 'silent', 'plugins.watch': false } });
process.stdout.write(JSON.stringify(sections));
`;

describe('config schema at start-up', function () {
  this.timeout(60_000);

  it('is compiled once, with the sections of the plugins found, not once for core alone first', async () => {
    const { stdout } = await promisify(execFile)(process.execPath, ['--input-type=module', '-e', COUNT_COMPILES], {
      cwd: REPO_ROOT,
      env: { PATH: process.env.PATH ?? '' },
    });
    const sections = JSON.parse(stdout) as number[];
    assert.equal(sections.length, 1, `compiled ${sections.length} times, with ${sections.join(', ')} plugin sections`);
    assert.ok(sections[0]! > 0, 'the one compile holds the plugin sections');
  });
});
