import { strict as assert } from 'node:assert';
import { ManifestError, validateManifest } from '@nucleus/core/internal/kernel/plugin-manifest';

const good = { id: 'my-plugin', version: '1.2.3', kernelApi: '^1.0.0', entry: './dist/index.js' };

function problems(nucleus: unknown): string[] {
  try {
    validateManifest({ nucleus }, 'x/package.json');
  } catch (err) {
    assert.ok(err instanceof ManifestError);
    return err.problems;
  }
  return [];
}

describe('plugin manifest validation', () => {
  it('accepts a complete manifest', () => {
    const manifest = validateManifest(
      { nucleus: { ...good, provides: ['backend:cpu'], requires: { 'other-plugin': '>=1.0.0 <3' } } },
      'x',
    );
    assert.equal(manifest.id, 'my-plugin');
  });

  it('names each bad field', () => {
    assert.deepEqual(problems({ ...good, version: 'one' }), ['nucleus.version: must be a valid semver']);
    assert.deepEqual(problems({ ...good, kernelApi: 'not a range!' }), [
      'nucleus.kernelApi: must be a valid semver-range',
    ]);
    assert.deepEqual(problems({ id: 'x', version: '1.0.0', kernelApi: '^1.0.0' }), ['nucleus.entry: is required']);
    assert.deepEqual(problems({ ...good, id: 'Bad_Id' }), [
      'nucleus.id: must match pattern "^[a-z][a-z0-9]*(-[a-z0-9]+)*$"',
    ]);
    assert.deepEqual(problems({ ...good, requires: { other: 'whenever' } }), [
      'nucleus.requires.other: must be a valid semver-range',
    ]);
    assert.deepEqual(problems({ ...good, colour: 'blue' }), ['nucleus: unknown field "colour"']);
  });

  it('rejects a package without a nucleus section and a config schema that is not a schema', () => {
    assert.throws(() => validateManifest({ name: 'x' }, 'p'), /no "nucleus" section/);
    assert.deepEqual(problems({ ...good, configSchema: { type: 'no-such-type' } }).length, 1);
    assert.match(
      problems({ ...good, configSchema: { type: 'no-such-type' } })[0]!,
      /^nucleus\.configSchema: not a valid JSON Schema/,
    );
  });
});
