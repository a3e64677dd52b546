import { strict as assert } from 'node:assert';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { GenerationEngine } from '@nucleus/core/internal/engine/llm/generation/generation-engine';
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
