import { strict as assert } from 'node:assert';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { NgramProposer } from '@nucleus/plugin-spec-decode';
import { createTokenizer, loadLlm, loadTinyLlama, type LlmTokenizer, type LoadedLlm } from '../helpers/llm.js';
import {
  ContribDecoderSession,
  type ResidentKvRunner,
} from '@nucleus/core/internal/engine/llm/generation/contrib-session';
import type { KvBatch } from '@nucleus/core/internal/engine/llm/generation/kv-batch';
import { DecoderSession, type DecoderRunner } from '@nucleus/core/internal/engine/llm/generation/decoder-session';
import {
  GenerationLoop,
  type LoopSink,
  type SequenceInit,
  type StepReport,
} from '@nucleus/core/internal/engine/llm/generation/generation-loop';
import type { Speculation } from '@nucleus/core/internal/engine/llm/generation/speculative-step';
import { DEFAULT_SAMPLING } from '@nucleus/core/internal/engine/llm/generation/sampler';
import { GenerationScheduler } from '@nucleus/core/internal/engine/llm/generation/scheduler';
import { loopSequence, openTinyLlama } from '../llm-engine/helpers.js';
import { requireStories, STORIES_DIR } from '../llm-formats/llm-module.js';

const REPETITIVE = 'one two three four, one two three four, one two three four, one two three four, one two';
const STORY = 'Lily and Ben went to the park. Lily saw a big red ball. Ben saw a big red ball too. Lily and Ben';
const SESSION_OPTIONS: ort.InferenceSession.SessionOptions = {
  intraOpNumThreads: 1,
  extra: { session: { intra_op: { allow_spinning: '0' } } },
};

interface Outcome {
  tokens: number[];
  /** The text each token released, in order. */
  pieces: string[];
  text: string;
  reason?: string;
  stop?: string;
}

// Speculative decoding inside the loop, on the tiny Llama (random weights: its greedy output soon repeats one token)
// and on the trained stories260K (real text), both graph styles: drafts from prompt lookup, verified in one step over
// the cached KV, the KV cut back to the tokens kept.
for (const model of ['tiny Llama', 'stories260K'] as const)
  for (const style of ['generic', 'contrib'] as const)
    describe(`GenerationLoop with speculative decoding (${model}, ${style} graph)`, () => {
      let llm: LoadedLlm;
      let session: ort.InferenceSession;
      let runner: DecoderRunner | ResidentKvRunner;
      let tokenizer: LlmTokenizer;
      let cacheDir: string | undefined;
      const prompt = model === 'tiny Llama' ? REPETITIVE : STORY;

      before(async function () {
        if (model === 'stories260K') {
          requireStories(this);
          cacheDir = mkdtempSync(join(tmpdir(), 'spec-decode-'));
          llm = await loadLlm(join(STORIES_DIR, 'stories260K.gguf'), { cacheDir, graphStyle: style });
        } else if (style === 'generic') ({ llm, session, runner } = await openTinyLlama());
        else llm = await loadTinyLlama({ graphStyle: 'contrib' });
        session ??= await ort.InferenceSession.create(llm.onnxPath, SESSION_OPTIONS);
        runner ??=
          style === 'contrib'
            ? new ContribDecoderSession(session, llm.config, { initialRows: 2 })
            : new DecoderSession(session, llm.config);
        tokenizer = createTokenizer(llm.tokenizer);
      });
      after(async () => {
        await session?.release();
        if (cacheDir) rmSync(cacheDir, { recursive: true, force: true });
      });

      const sequence = (id: number, prompt: string, overrides: Partial<SequenceInit> = {}): SequenceInit =>
        loopSequence(tokenizer, llm, id, prompt, { maxTokens: 40, ...overrides });

      const ngram = (k = 4, maxBatch = 4, min = 1, max = 3): Speculation => ({
        method: 'ngram',
        proposer: new NgramProposer({ promptLookupMin: min, promptLookupMax: max }),
        numSpeculativeTokens: k,
        maxBatch,
      });

      /** Runs sequences to their end (`joins[i]` join before iteration i); outcomes per id, steps, and the loop. */
      async function drive(
        joins: SequenceInit[][],
        speculation?: Speculation,
      ): Promise<{ outcomes: Map<number, Outcome>; steps: StepReport[]; loop: GenerationLoop }> {
        const outcomes = new Map<number, Outcome>();
        let finished = 0;
        const sink: LoopSink = {
          token: (id, t, text) => {
            const o = outcomes.get(id)!;
            assert.equal(o.reason, undefined, 'no token after the finish');
            o.tokens.push(t);
            o.pieces.push(text);
            o.text += text;
          },
          finish: (id, reason, text, completionTokens, stop) => {
            const o = outcomes.get(id)!;
            o.text += text;
            o.reason = reason;
            if (stop !== undefined) o.stop = stop;
            // An end-of-sequence token counts, but is not emitted.
            assert.equal(completionTokens, o.tokens.length + (reason === 'stop' ? 1 : 0), 'completion tokens');
            finished++;
          },
          fail: (_ids, err) => {
            throw err;
          },
        };
        const scheduler = new GenerationScheduler({
          maxRunning: 8,
          maxBatchSize: 8,
          batchWindowMs: 0,
          strategy: 'fifo',
        });
        const loop = new GenerationLoop({
          runner,
          scheduler,
          sink,
          maxContext: llm.config.maxContext,
          ...(speculation && { speculation }),
        });
        const steps: StepReport[] = [];
        const total = joins.flat().length;
        for (let i = 0; i < 1000 && (finished < total || i < joins.length); i++) {
          for (const s of joins[i] ?? []) {
            outcomes.set(s.id, { tokens: [], pieces: [], text: '' });
            loop.add(s);
          }
          steps.push(...(await loop.iterate()).steps);
        }
        assert.equal(finished, total, 'every sequence finished');
        return { outcomes, steps, loop };
      }

      const decodeSteps = (steps: StepReport[]) => steps.filter((s) => s.phase === 'decode').length;

      it('gives the greedy tokens of plain decoding, token for token, with drafts accepted on a repetitive prompt in fewer steps', async () => {
        const plain = await drive([[sequence(1, prompt, { maxTokens: 60 })]]);
        const fast = await drive([[sequence(1, prompt, { maxTokens: 60 })]], ngram());
        assert.deepEqual(fast.outcomes.get(1), plain.outcomes.get(1));
        const stats = fast.loop.speculation!;
        assert.ok(
          stats.drafts > 0 && stats.draftTokens >= stats.drafts,
          `drafts were verified: ${JSON.stringify(stats)}`,
        );
        assert.ok(stats.acceptedTokens > 0, `drafts were accepted: ${JSON.stringify(stats)}`);
        assert.ok(stats.acceptedTokens <= stats.draftTokens);
        // Every accepted draft token is a decode step saved.
        assert.equal(decodeSteps(fast.steps), decodeSteps(plain.steps) - stats.acceptedTokens);
        assert.equal(plain.loop.speculation, undefined);
      });

      it('gives the greedy tokens of plain decoding for several sequences joining at different times, with rows of different draft lengths', async () => {
        const prompts = [
          prompt,
          'Once upon a time',
          'The little dog was running and jumping in the grass.',
          'a b a b a b a b a b',
        ];
        const joins = () => [
          [sequence(1, prompts[0]!), sequence(2, prompts[1]!)],
          [],
          [sequence(3, prompts[2]!, { maxTokens: 17 })],
          [sequence(4, prompts[3]!, { maxTokens: 25 })],
        ];
        const plain = await drive(joins());
        const fast = await drive(joins(), ngram(5, 4));
        for (const id of [1, 2, 3, 4])
          assert.deepEqual(fast.outcomes.get(id), plain.outcomes.get(id), `sequence ${id}`);
        assert.ok(fast.loop.speculation!.acceptedTokens > 0);
      });

      it('decodes one token per step while more sequences run than maxBatch', async () => {
        const joins = () => [[sequence(1, prompt, { maxTokens: 30 }), sequence(2, prompt, { maxTokens: 30 })]];
        const plain = await drive(joins());
        const capped = await drive(joins(), ngram(4, 1));
        assert.deepEqual(capped.outcomes, plain.outcomes);
        assert.equal(capped.loop.speculation!.drafts, 0, 'no draft while two sequences run with maxBatch 1');
      });

      it('never goes past max_tokens, whatever the drafts', async () => {
        for (const maxTokens of [1, 2, 3, 5, 9]) {
          const plain = await drive([[sequence(1, prompt, { maxTokens })]]);
          const fast = await drive([[sequence(1, prompt, { maxTokens })]], ngram(8));
          assert.deepEqual(fast.outcomes.get(1), plain.outcomes.get(1), `max_tokens ${maxTokens}`);
          assert.equal(fast.outcomes.get(1)!.tokens.length, maxTokens);
          assert.equal(fast.outcomes.get(1)!.reason, 'length');
        }
      });

      // Indices of tokens that came out of a step after an accepted draft token of their own step (one sequence running):
      // where an end inside a draft happens.
      function insideDrafts(o: Outcome, steps: StepReport[]): number[] {
        const inside: number[] = [];
        let at = 1; // the first token comes from the prefill
        for (const s of steps.filter((x) => x.phase === 'decode')) {
          for (let i = 1; i < s.tokens; i++) inside.push(at + i);
          at += s.tokens;
        }
        return inside.filter((j) => j < o.tokens.length);
      }

      // The tiny Llama's repeated token releases no text until the end, and repeats: nothing to end at inside a draft.
      if (model === 'stories260K')
        it('ends at a stop sequence or an end-of-sequence token inside an accepted draft exactly where plain decoding ends', async () => {
          const plain = await drive([[sequence(1, prompt, { maxTokens: 80 })]]);
          const fast = await drive([[sequence(1, prompt, { maxTokens: 80 })]], ngram(8));
          const o = fast.outcomes.get(1)!;
          assert.deepEqual(o, plain.outcomes.get(1));
          const inside = insideDrafts(o, fast.steps);
          assert.ok(inside.length > 0, 'some tokens came from accepted drafts');
          // An end-of-sequence token seen first there, and a stop string that first appears there.
          const eos = inside.find((j) => !o.tokens.slice(0, j).includes(o.tokens[j]!));
          const stop = inside
            .map((j) => ({ j, s: o.pieces[j - 1]! + o.pieces[j]! }))
            .find(
              ({ j, s }) =>
                s.length > 0 &&
                o.pieces[j]!.length > 0 &&
                o.text.indexOf(s) + s.length === o.pieces.slice(0, j + 1).join('').length,
            );
          const cases: Partial<SequenceInit>[] = [];
          if (eos !== undefined) cases.push({ eosTokenIds: [o.tokens[eos]!], ignoreEos: false });
          if (stop !== undefined) cases.push({ stop: [stop.s] });
          assert.ok(cases.length === 2, 'a token and a string to end at inside a draft');
          for (const overrides of cases) {
            const p = await drive([[sequence(1, prompt, { maxTokens: 80, ...overrides })]]);
            const f = await drive([[sequence(1, prompt, { maxTokens: 80, ...overrides })]], ngram(8));
            assert.ok(['stop', 'stop_sequence'].includes(p.outcomes.get(1)!.reason!), JSON.stringify(overrides));
            assert.ok(p.outcomes.get(1)!.tokens.length < 80);
            assert.deepEqual(f.outcomes.get(1), p.outcomes.get(1), JSON.stringify(overrides));
          }
        });

      it('falls back to a plain decode step when a verify step fails, with the cache as it was', async () => {
        const plain = await drive([
          [sequence(1, prompt, { maxTokens: 60 }), sequence(2, 'Once upon a time', { maxTokens: 50 })],
        ]);
        const real = runner;
        let calls = 0;
        // Every third verify fails, the contrib one after it ran (its row's KV grew and must be cut back).
        const failing =
          real instanceof ContribDecoderSession
            ? ({
                resident: true,
                layout: real.layout,
                get lengths() {
                  return real.lengths;
                },
                admit: real.admit.bind(real),
                decode: real.decode.bind(real),
                keepRows: real.keepRows.bind(real),
                blockAt: real.blockAt.bind(real),
                truncate: real.truncate.bind(real),
                verify: async (row: number, tokens: readonly number[]) => {
                  const logits = await real.verify(row, tokens);
                  if (++calls % 3 === 0) throw new Error('verify failed');
                  return logits;
                },
              } satisfies ResidentKvRunner)
            : ({
                layout: real.layout,
                prefill: (real as DecoderSession).prefill.bind(real),
                decode: (real as DecoderSession).decode.bind(real),
                verify: async (kv: KvBatch, tokens: readonly (readonly number[])[]) => {
                  if (++calls % 3 === 0) throw new Error('verify failed');
                  return (real as DecoderSession).verify(kv, tokens);
                },
              } satisfies DecoderRunner);
        runner = failing;
        try {
          const fast = await drive(
            [[sequence(1, prompt, { maxTokens: 60 }), sequence(2, 'Once upon a time', { maxTokens: 50 })]],
            ngram(),
          );
          assert.deepEqual(fast.outcomes, plain.outcomes);
          assert.ok(calls >= 3, `verify failed at least once (${calls} calls)`);
          assert.ok(fast.loop.speculation!.acceptedTokens > 0);
        } finally {
          runner = real;
        }
      });

      it('samples with a seed reproducibly, within the vocabulary, with drafts accepted', async () => {
        const params = { ...DEFAULT_SAMPLING, temperature: 0.7, topK: 20, topP: 0.95, repetitionPenalty: 1.05 };
        const run = () =>
          drive(
            [
              [
                sequence(1, prompt, { params, seed: 42, maxTokens: 50 }),
                sequence(2, prompt, { params, seed: 7, maxTokens: 50 }),
              ],
            ],
            ngram(),
          );
        const a = await run();
        const b = await run();
        assert.deepEqual(a.outcomes, b.outcomes);
        for (const o of a.outcomes.values()) {
          assert.equal(o.tokens.length, 50);
          for (const t of o.tokens) assert.ok(Number.isInteger(t) && t >= 0 && t < llm.config.vocabSize);
        }
        assert.notDeepEqual(a.outcomes.get(1)!.tokens, a.outcomes.get(2)!.tokens);
        assert.ok(a.loop.speculation!.acceptedTokens > 0, JSON.stringify(a.loop.speculation));
      });
    });

describe('GenerationLoop speculation needs a runner that verifies', () => {
  it('refuses a runner without verify steps, with a clear message', () => {
    const runner = {
      layout: { numLayers: 1, numKvHeads: 1, headDim: 1, dtype: 'float32' },
      prefill: async () => undefined,
      decode: async () => undefined,
    } as unknown as DecoderRunner;
    const sink: LoopSink = { token: () => undefined, finish: () => undefined, fail: () => undefined };
    const scheduler = new GenerationScheduler({ maxRunning: 1, maxBatchSize: 1, batchWindowMs: 0, strategy: 'fifo' });
    const speculation: Speculation = {
      method: 'ngram',
      proposer: new NgramProposer(),
      numSpeculativeTokens: 4,
      maxBatch: 1,
    };
    assert.throws(
      () => new GenerationLoop({ runner, scheduler, sink, maxContext: 64, speculation }),
      /cannot verify draft tokens/,
    );
  });
});
