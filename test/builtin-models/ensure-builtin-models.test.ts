import { defaultModelCacheDir } from '@nucleus/core/internal/engine/model-cache-dir';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { builtin } from './builtin-models-module.js';

describe('ensureBuiltinModels', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'nucleus-models-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('writes <name>/1/model.onnx and model.json for every built-in model', async () => {
    const ensured = await builtin.ensureBuiltinModels(dir);
    assert.deepEqual(
      ensured.map((m) => m.name),
      builtin.BUILTIN_MODELS.map((g) => g.name),
    );
    for (const m of ensured) {
      assert.equal(m.created, true);
      assert.equal(m.modelPath, join(dir, m.name, '1', 'model.onnx'));
      const bytes = await readFile(m.modelPath);
      const manifest = JSON.parse(await readFile(join(dir, m.name, '1', 'model.json'), 'utf8')) as Record<
        string,
        unknown
      >;
      assert.equal(manifest.name, m.name);
      assert.equal(manifest.version, 1);
      assert.equal(manifest.framework, 'onnx');
      assert.equal(typeof manifest.description, 'string');
      assert.ok(Array.isArray(manifest.inputs) && manifest.inputs.length > 0);
      assert.ok(Array.isArray(manifest.outputs) && manifest.outputs.length > 0);
      assert.equal(manifest.sha256, createHash('sha256').update(bytes).digest('hex'));
      assert.deepEqual(manifest.inputs, m.manifest.inputs);
    }
    const tabular = ensured.find((m) => m.name === 'tabular-classifier')!;
    assert.equal(tabular.manifest.preprocessing?.features.length, 8);
    assert.ok(
      ensured.filter((m) => m.name !== 'tabular-classifier').every((m) => m.manifest.preprocessing === undefined),
    );
  });

  it('leaves valid files alone and rebuilds a corrupted or stale one', async () => {
    const before = await stat(join(dir, 'mlp-classifier', '1', 'model.onnx'));
    const again = await builtin.ensureBuiltinModels(dir);
    assert.ok(
      again.every((m) => !m.created),
      'nothing regenerated',
    );
    assert.equal((await stat(join(dir, 'mlp-classifier', '1', 'model.onnx'))).mtimeMs, before.mtimeMs);

    await writeFile(join(dir, 'multi-io', '1', 'model.onnx'), 'garbage');
    const manifestPath = join(dir, 'bert-tiny', '1', 'model.json');
    const stale = JSON.parse(await readFile(manifestPath, 'utf8')) as { builtin: { revision: number } };
    stale.builtin.revision = -1;
    await writeFile(manifestPath, JSON.stringify(stale));
    const repaired = await builtin.ensureBuiltinModels(dir);
    assert.deepEqual(
      repaired.filter((m) => m.created).map((m) => m.name),
      ['multi-io', 'bert-tiny'],
    );
    const bytes = await readFile(join(dir, 'multi-io', '1', 'model.onnx'));
    assert.ok(bytes.equals(Buffer.from(builtin.buildMultiIoModel().bytes)));
  });

  it('can ensure a subset, and says which names it does not know', async () => {
    const sub = await mkdtemp(join(tmpdir(), 'nucleus-models-'));
    try {
      const only = await builtin.ensureBuiltinModels(sub, { names: ['resnet-tiny'] });
      assert.deepEqual(
        only.map((m) => m.name),
        ['resnet-tiny'],
      );
      await assert.rejects(builtin.ensureBuiltinModels(sub, { names: ['nope'] }), /unknown built-in model\(s\): nope/);
    } finally {
      await rm(sub, { recursive: true, force: true });
    }
  });

  it('defaults to <repo root>/.cache/models, whatever the environment says (cache.dir is the config key for another folder)', () => {
    const saved = process.env.NUCLEUS_CACHE_DIR;
    try {
      process.env.NUCLEUS_CACHE_DIR = '/tmp/somewhere';
      const repoRoot = fileURLToPath(new URL('../../../', import.meta.url));
      assert.equal(defaultModelCacheDir(), join(repoRoot, '.cache', 'models'));
    } finally {
      if (saved === undefined) delete process.env.NUCLEUS_CACHE_DIR;
      else process.env.NUCLEUS_CACHE_DIR = saved;
    }
  });
});
