import assert from 'node:assert/strict';
import { join } from 'node:path';
import type { TestKernel } from '@nucleus/sdk/testing';
import { requireStories, STORIES_DIR } from '../llm-formats/llm-module.js';
import { admin, errorOf, startLifecycleKernel } from './lifecycle-fixtures.js';

async function greedy(kit: TestKernel, model: string): Promise<string> {
  const res = await admin(kit, '/v1/completions', {
    method: 'POST',
    body: { model, prompt: 'Once upon a time', max_tokens: 12, temperature: 0 },
  });
  assert.equal(res.status, 200, JSON.stringify(res.body));
  return (res.body as { choices: { text: string }[] }).choices[0]!.text;
}

describe('a format plugin switched off and on at run time', function () {
  this.timeout(120_000);
  let kit: TestKernel | undefined;
  before(async function () {
    requireStories(this);
    kit = await startLifecycleKernel();
  });
  after(() => kit?.stop());

  it('disabling format-gguf makes a .gguf load fail saying why; enabling it again loads it, without a restart', async () => {
    const k = kit!;
    const gguf = join(STORIES_DIR, 'stories260K.gguf');
    const first = await admin(k, '/admin/models', { method: 'POST', body: { name: 'before', source: gguf } });
    assert.equal(first.status, 201, JSON.stringify(first.body));
    const text = await greedy(k, 'before');
    assert.ok(text.length > 10, text);

    const off = await admin(k, '/admin/plugins/format-gguf/disable', { method: 'POST' });
    assert.equal(off.status, 200, JSON.stringify(off.body));
    const refused = await admin(k, '/admin/models', { method: 'POST', body: { name: 'after', source: gguf } });
    assert.equal(refused.status, 400);
    const error = errorOf(refused);
    assert.equal(error.code, 'unsupported_model_format');
    assert.match(error.message, /no active model format loads .*stories260K\.gguf/);
    assert.match(error.message, /Active formats: .*onnx \(/);
    assert.doesNotMatch(error.message, /gguf \(/);
    // A model the format loaded before keeps serving: it runs as an ONNX graph, the format is not needed any more.
    assert.equal(await greedy(k, 'before'), text);

    const on = await admin(k, '/admin/plugins/format-gguf/enable', { method: 'POST' });
    assert.equal(on.status, 200, JSON.stringify(on.body));
    const loaded = await admin(k, '/admin/models', { method: 'POST', body: { name: 'after', source: gguf } });
    assert.equal(loaded.status, 201, JSON.stringify(loaded.body));
    assert.equal(await greedy(k, 'after'), text);
  });
});
