import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import { copyFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { STORIES_DIR, requireStories } from '../llm-formats/llm-module.js';
import { CLI, REPO_ROOT, tempDir } from '../helpers/paths.js';
import { admin, errorOf, startLifecycleKernel } from '../model-lifecycle/lifecycle-fixtures.js';

/** `nucleus serve` on one model and a free port; it exits at start when the model cannot serve. */
function serveModel(spec: string) {
  const res = spawnSync(process.execPath, [CLI, 'serve', '--port', '0', '--no-watch', '--model', spec], {
    cwd: REPO_ROOT,
    env: { PATH: process.env.PATH ?? '' },
    encoding: 'utf8',
    timeout: 60_000,
  });
  return { code: res.status, err: res.stderr };
}

describe('model sources that cannot serve say what to do, on the command line and over HTTP', function () {
  this.timeout(120_000);
  const dir = tempDir('source-errors');
  const pth = join(dir, 'model.pth');
  writeFileSync(pth, 'PK\u0003\u0004 not really a pickle');
  const missing = join(dir, 'nowhere.gguf');

  it('a missing file: exit 2 at start, 400 at run time, both saying it does not exist', async () => {
    const run = serveModel(`s=${missing}`);
    assert.equal(run.code, 2, run.err);
    assert.match(run.err, /model 's' failed to load: model source .*nowhere\.gguf does not exist; check the path/);
    assert.doesNotMatch(run.err, /ENOENT/);
    const kit = await startLifecycleKernel();
    try {
      const res = await admin(kit, '/admin/models', { method: 'POST', body: { name: 's', source: missing } });
      assert.deepEqual([res.status, errorOf(res).code], [400, 'model_source_not_found']);
      assert.match(errorOf(res).message, /does not exist; check the path/);
    } finally {
      await kit.stop();
    }
  });

  it('a PyTorch pickle: exit 2 at start, 400 at run time, both saying why and what to convert it to', async () => {
    const run = serveModel(`p=${pth}`);
    assert.equal(run.code, 2, run.err);
    assert.match(run.err, /PyTorch checkpoint: pickles are not loaded, because reading one can run arbitrary code/);
    assert.match(run.err, /torch\.onnx\.export/);
    const kit = await startLifecycleKernel();
    try {
      const res = await admin(kit, '/admin/models', { method: 'POST', body: { name: 'p', source: pth } });
      assert.deepEqual([res.status, errorOf(res).code], [400, 'unsupported_model_format']);
      assert.match(errorOf(res).message, /PyTorch checkpoint/);
    } finally {
      await kit.stop();
    }
  });

  it('a llama2.c checkpoint without its tokenizer: the start-up error and the 422 say how to give one', async function () {
    requireStories(this);
    const bin = join(dir, 'stories260K.bin');
    copyFileSync(join(STORIES_DIR, 'stories260K.bin'), bin);
    const run = serveModel(`c=${bin}`);
    assert.equal(run.code, 2, run.err);
    assert.match(run.err, /no tokenizer: set the model's "tokenizer" config key/);
    const kit = await startLifecycleKernel();
    try {
      const refused = await admin(kit, '/admin/models', { method: 'POST', body: { name: 'c', source: bin } });
      assert.equal(refused.status, 422);
      assert.match(errorOf(refused).message, /no tokenizer: set the model's "tokenizer" config key/);
      const tokenizer = join(STORIES_DIR, 'tok512.bin');
      const loaded = await admin(kit, '/admin/models', { method: 'POST', body: { name: 'c', source: bin, tokenizer } });
      assert.equal(loaded.status, 201, JSON.stringify(loaded.body));
    } finally {
      await kit.stop();
    }
  });
});
