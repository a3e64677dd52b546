import { strict as assert } from 'node:assert';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { startTestKernel, type TestKernel } from '@nucleus/sdk/testing';
import type { GenerationEngine } from '@nucleus/core/internal/engine/llm/generation/generation-engine';
import { REPO_ROOT } from '../helpers/paths.js';
import { parseIds, requireStories, STORIES_DIR } from '../llm-formats/llm-module.js';
import { generateAll, testEngine } from './engine-helpers.js';

const read = (name: string) => readFileSync(join(STORIES_DIR, name), 'utf8');

// The trained stories260K model through the whole engine (GGUF → graph → worker → batched loop) must reproduce
// llama2.c's published greedy outputs exactly, also when both references are decoded in one batch.
describe('GenerationEngine on stories260K (llama2.c reference outputs)', () => {
  let engine: GenerationEngine | undefined;

  before(async function () {
    requireStories(this);
    ({ engine } = testEngine({ models: [{ name: 'stories', path: join(STORIES_DIR, 'stories260K.gguf') }], 'scheduler.batchWindowMs': 20 }));
    await engine.start();
  });
  after(async () => {
    await engine?.stop();
  });

  it('gives both greedy references, token for token and byte for byte, decoded together in one batch', async () => {
    const fromBos = parseIds(read('reference-greedy-200.ids.txt'));
    const fromPrompt = parseIds(read('reference-prompt-64.ids.txt'));
    // run.c counts positions: the prompt's tokens after the first are forced, the rest are generated.
    const forced = fromPrompt.prompt.length - 1;
    const [a, b] = await Promise.all([
      generateAll(engine!, { model: 'stories', prompt: fromBos.prompt, maxTokens: fromBos.next.length, temperature: 0, ignoreEos: true }),
      generateAll(engine!, { model: 'stories', prompt: 'Once upon a time', maxTokens: fromPrompt.next.length - forced, temperature: 0, ignoreEos: true }),
    ]);
    assert.deepEqual(a.tokens[0], fromBos.next);
    assert.equal(a.texts[0], read('reference-greedy-200.txt'));
    assert.equal(b.usage!.promptTokens, fromPrompt.prompt.length);
    assert.deepEqual(b.tokens[0], fromPrompt.next.slice(forced));
    assert.equal('Once upon a time' + b.texts[0], read('reference-prompt-64.txt'));
  });
});

describe('a server configured with a GGUF model', () => {
  let kit: TestKernel | undefined;
  before(async function () {
    requireStories(this);
    kit = await startTestKernel({
      plugins: [join(REPO_ROOT, 'plugins', 'api-openai')],
      config: { models: [{ name: 'stories', path: join(STORIES_DIR, 'stories260K.gguf') }] },
    });
  });
  after(async () => {
    await kit?.stop();
  });

  it('serves it through /v1 only, ready, with no built-in model in either engine', async () => {
    assert.equal((await kit!.request('/ready')).status, 200, 'the tensor engine does not try to load the GGUF');
    assert.deepEqual(kit!.kernel.inference.list(), []);
    assert.deepEqual(
      kit!.kernel.generation.list().map((m) => m.name),
      ['stories'],
    );
    const res = await kit!.request('/v1/completions', { body: { model: 'stories', prompt: 'Once upon a time', max_tokens: 10, temperature: 0 } });
    const body = res.body as { choices: { text: string }[] };
    assert.equal(body.choices[0]!.text, read('reference-prompt-64.txt').slice('Once upon a time'.length).slice(0, body.choices[0]!.text.length));
    assert.ok(body.choices[0]!.text.length > 10);
  });
});
