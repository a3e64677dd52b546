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
// llama2.c's published greedy outputs exactly, also when both references are decoded in one batch: F32 and Q8_0 weights,
// in the graph style the engine picks on the CPU backend (contrib) and in the generic one when configured.
const CASES: {
  file: string;
  graphStyle?: 'generic' | 'contrib';
  expected: 'generic' | 'contrib';
  reference: string;
}[] = [
  { file: 'stories260K.gguf', expected: 'contrib', reference: 'reference-greedy-200' },
  { file: 'stories260K-q8_0.gguf', expected: 'contrib', reference: 'reference-q8_0-greedy-200' },
  { file: 'stories260K.gguf', graphStyle: 'generic', expected: 'generic', reference: 'reference-greedy-200' },
  { file: 'stories260K-q8_0.gguf', graphStyle: 'generic', expected: 'generic', reference: 'reference-q8_0-greedy-200' },
];

for (const c of CASES)
  describe(`GenerationEngine on ${c.file}, ${c.graphStyle ? `graphStyle ${c.graphStyle}` : 'default graph style'} (llama2.c reference outputs)`, () => {
    let engine: GenerationEngine | undefined;

    before(async function () {
      requireStories(this);
      const model = {
        name: 'stories',
        path: join(STORIES_DIR, c.file),
        ...(c.graphStyle && { graphStyle: c.graphStyle }),
      };
      ({ engine } = testEngine({ models: [model], 'scheduler.batchWindowMs': 20 }));
      await engine.start();
    });
    after(async () => {
      await engine?.stop();
    });

    it(`runs the ${c.expected} graph`, () => {
      assert.equal(engine!.get('stories').graphStyle, c.expected);
    });

    it(`gives ${c.reference} and reference-prompt-64, token for token and byte for byte, decoded together in one batch`, async () => {
      const fromBos = parseIds(read(`${c.reference}.ids.txt`));
      const fromPrompt = parseIds(read('reference-prompt-64.ids.txt'));
      // run.c counts positions: the prompt's tokens after the first are forced, the rest are generated.
      const forced = fromPrompt.prompt.length - 1;
      const [a, b] = await Promise.all([
        generateAll(engine!, {
          model: 'stories',
          prompt: fromBos.prompt,
          maxTokens: fromBos.next.length,
          temperature: 0,
          ignoreEos: true,
        }),
        generateAll(engine!, {
          model: 'stories',
          prompt: 'Once upon a time',
          maxTokens: fromPrompt.next.length - forced,
          temperature: 0,
          ignoreEos: true,
        }),
      ]);
      assert.deepEqual(a.tokens[0], fromBos.next);
      assert.equal(a.texts[0], read(`${c.reference}.txt`));
      assert.equal(b.usage!.promptTokens, fromPrompt.prompt.length);
      assert.deepEqual(b.tokens[0], fromPrompt.next.slice(forced));
      assert.equal(`Once upon a time${b.texts[0]}`, read('reference-prompt-64.txt'));
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
      kit!.kernel.generation.list().map((m) => [m.name, m.graphStyle]),
      [['stories', 'contrib']],
    );
    const res = await kit!.request('/v1/completions', {
      body: { model: 'stories', prompt: 'Once upon a time', max_tokens: 10, temperature: 0 },
    });
    const body = res.body as { choices: { text: string }[] };
    assert.equal(
      body.choices[0]!.text,
      read('reference-prompt-64.txt').slice('Once upon a time'.length).slice(0, body.choices[0]!.text.length),
    );
    assert.ok(body.choices[0]!.text.length > 10);
  });
});
