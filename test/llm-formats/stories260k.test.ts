import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { createTokenizer, loadLlm, type LoadedLlm } from '../helpers/llm.js';
import { tempDir } from '../helpers/paths.js';
import { DecoderRunner } from './decoder-runner.js';
import { STORIES_DIR, parseIds, requireStories } from './llm-module.js';

const BOS = 1;

interface Case {
  file: string;
  options?: { tokenizerPath?: string; graphStyle?: 'generic' | 'contrib' };
  /** Which greedy reference this weight set reproduces. */
  reference: 'reference-greedy-200' | 'reference-q8_0-greedy-200';
}

const CASES: Case[] = [
  { file: 'stories260K.gguf', reference: 'reference-greedy-200' },
  { file: 'stories260K-convert-llama2c.gguf', reference: 'reference-greedy-200' },
  { file: 'stories260K.bin', options: { tokenizerPath: 'tok512.bin' }, reference: 'reference-greedy-200' },
  { file: 'stories260K-q8_0.gguf', reference: 'reference-q8_0-greedy-200' },
  { file: 'stories260K-convert-llama2c-q8_0.gguf', reference: 'reference-q8_0-greedy-200' },
  // The style the engine builds on the CPU backend, for every source.
  { file: 'stories260K.gguf', options: { graphStyle: 'contrib' }, reference: 'reference-greedy-200' },
  { file: 'stories260K-convert-llama2c.gguf', options: { graphStyle: 'contrib' }, reference: 'reference-greedy-200' },
  {
    file: 'stories260K.bin',
    options: { tokenizerPath: 'tok512.bin', graphStyle: 'contrib' },
    reference: 'reference-greedy-200',
  },
  { file: 'stories260K-q8_0.gguf', options: { graphStyle: 'contrib' }, reference: 'reference-q8_0-greedy-200' },
  {
    file: 'stories260K-convert-llama2c-q8_0.gguf',
    options: { graphStyle: 'contrib' },
    reference: 'reference-q8_0-greedy-200',
  },
];

const read = (name: string): string => readFileSync(join(STORIES_DIR, name), 'utf8');

describe('stories260K reproduces llama2.c run.c exactly (greedy, float32)', () => {
  let cacheDir: string;
  before(function () {
    requireStories(this);
    cacheDir = tempDir('llm-stories');
  });
  after(async () => {
    if (cacheDir) await rm(cacheDir, { recursive: true, force: true });
  });

  for (const c of CASES) {
    const style = c.options?.graphStyle ?? 'generic';
    describe(`${c.file} (${style} graph)`, () => {
      let llm: LoadedLlm;
      let runner: DecoderRunner;
      before(async function () {
        requireStories(this);
        const tokenizerPath = c.options?.tokenizerPath ? join(STORIES_DIR, c.options.tokenizerPath) : undefined;
        llm = await loadLlm(join(STORIES_DIR, c.file), {
          cacheDir,
          ...(tokenizerPath ? { tokenizerPath } : {}),
          graphStyle: style,
        });
        runner = await DecoderRunner.open(llm.onnxPath, llm.config);
      });
      after(async () => {
        await runner?.close();
      });

      it(`200 greedy steps from BOS give ${c.reference}'s ids and text`, async () => {
        const expected = parseIds(read(`${c.reference}.ids.txt`));
        assert.deepEqual(expected.prompt, [BOS]);
        const ids = await runner.greedy([BOS], 200, [BOS]);
        assert.deepEqual(ids, expected.next);
        const tokenizer = createTokenizer(llm.tokenizer);
        assert.equal(tokenizer.decode([BOS, ...ids]), read(`${c.reference}.txt`));
        // Streaming after the BOS prompt prints the same bytes.
        const stream = tokenizer.createStreamDecoder({ prefix: [BOS] });
        assert.equal(ids.map((id) => stream.push(id)).join('') + stream.flush(), read(`${c.reference}.txt`));
      });

      it('"Once upon a time", 64 positions, gives reference-prompt-64', async () => {
        const expected = parseIds(read('reference-prompt-64.ids.txt'));
        const tokenizer = createTokenizer(llm.tokenizer);
        const prompt = tokenizer.encode('Once upon a time', { addBos: true });
        assert.deepEqual(prompt, expected.prompt);
        const ids = await runner.greedy(prompt, 64, [BOS]);
        assert.deepEqual(ids, expected.next);
        assert.equal(tokenizer.decode([BOS, ...ids]), read('reference-prompt-64.txt'));
      });
    });
  }

  it('the F32 and Q8_0 references agree up to generated token 114, as the README says', function () {
    requireStories(this);
    const f32 = parseIds(read('reference-greedy-200.ids.txt')).next;
    const q8 = parseIds(read('reference-q8_0-greedy-200.ids.txt')).next;
    const firstDiff = f32.findIndex((id, i) => id !== q8[i]);
    assert.equal(firstDiff, 114);
  });
});
