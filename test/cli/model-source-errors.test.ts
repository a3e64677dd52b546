import { strict as assert } from 'node:assert';
import { copyFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { TestKernel } from '@nucleus/sdk/testing';
import { STORIES_DIR, requireStories } from '../llm-formats/llm-module.js';
import { tempDir } from '../helpers/paths.js';
import { serveFailure } from '../helpers/server-child.js';
import { admin, errorOf, startLifecycleKernel } from '../model-lifecycle/lifecycle-fixtures.js';

describe('model sources that cannot serve say what to do, on the command line and over HTTP', function () {
  this.timeout(120_000);
  const dir = tempDir('source-errors');
  // One kernel answers every test's run-time load; each test loads under its own model name.
  let kit: TestKernel;
  before(async () => {
    kit = await startLifecycleKernel();
  });
  after(async () => {
    await kit?.stop();
  });
  const pth = join(dir, 'model.pth');
  writeFileSync(pth, 'PK\u0003\u0004 not really a pickle');
  const missing = join(dir, 'nowhere.gguf');

  it('a missing file: exit 2 at start, 400 at run time, both saying it does not exist', async () => {
    // The start-up refusal runs in its own process while the kernel here answers the same load.
    const [run, res] = await Promise.all([
      serveFailure(`s=${missing}`),
      admin(kit, '/admin/models', { method: 'POST', body: { name: 's', source: missing } }),
    ]);
    assert.equal(run.code, 2, run.err);
    assert.match(run.err, /model 's' failed to load: model source .*nowhere\.gguf does not exist; check the path/);
    assert.doesNotMatch(run.err, /ENOENT/);
    assert.deepEqual([res.status, errorOf(res).code], [400, 'model_source_not_found']);
    assert.match(errorOf(res).message, /does not exist; check the path/);
  });

  it('a PyTorch pickle: exit 2 at start, 400 at run time, both saying why and what to convert it to', async () => {
    const [run, res] = await Promise.all([
      serveFailure(`p=${pth}`),
      admin(kit, '/admin/models', { method: 'POST', body: { name: 'p', source: pth } }),
    ]);
    assert.equal(run.code, 2, run.err);
    assert.match(run.err, /PyTorch checkpoint: pickles are not loaded, because reading one can run arbitrary code/);
    assert.match(run.err, /torch\.onnx\.export/);
    assert.deepEqual([res.status, errorOf(res).code], [400, 'unsupported_model_format']);
    assert.match(errorOf(res).message, /PyTorch checkpoint/);
  });

  it('a llama2.c checkpoint without its tokenizer: the start-up error and the 422 say how to give one', async function () {
    requireStories(this);
    const bin = join(dir, 'stories260K.bin');
    copyFileSync(join(STORIES_DIR, 'stories260K.bin'), bin);
    const [run, refused] = await Promise.all([
      serveFailure(`c=${bin}`),
      admin(kit, '/admin/models', { method: 'POST', body: { name: 'c', source: bin } }),
    ]);
    assert.equal(run.code, 2, run.err);
    assert.match(run.err, /no tokenizer: set the model's "tokenizer" config key/);
    assert.equal(refused.status, 422);
    assert.match(errorOf(refused).message, /no tokenizer: set the model's "tokenizer" config key/);
    const tokenizer = join(STORIES_DIR, 'tok512.bin');
    const loaded = await admin(kit, '/admin/models', { method: 'POST', body: { name: 'c', source: bin, tokenizer } });
    assert.equal(loaded.status, 201, JSON.stringify(loaded.body));
  });
});
