import { strict as assert } from 'node:assert';
import * as ort from 'onnxruntime-node';
import { LruPolicy } from '@nucleus/plugin-cache-lru';
import { createTokenizer, loadTinyLlama, type LlmTokenizer, type LoadedLlm } from '../helpers/llm.js';
import { ContribDecoderSession } from '@nucleus/core/internal/engine/llm/generation/contrib-session';
import type { DecoderSession } from '@nucleus/core/internal/engine/llm/generation/decoder-session';
import {
  GenerationLoop,
  type LoopSink,
  type SequenceInit,
  type StepReport,
} from '@nucleus/core/internal/engine/llm/generation/generation-loop';
import { GenerationScheduler } from '@nucleus/core/internal/engine/llm/generation/scheduler';
import { PrefixCache } from '@nucleus/core/internal/engine/llm/prefix-cache/prefix-cache';
import { loopSequence, openTinyLlama } from '../llm-engine/helpers.js';

const SHARED =
  'You are a helpful storyteller. Tell short, kind stories about animals in the forest, with a happy ending and simple words. ';

// Both graph styles: the generic runner re-packs cached blocks into left-padded past tensors, the contrib runner copies
// them into its shared per-row buffers and runs the rest of the prompt over them.
for (const style of ['generic', 'contrib'] as const)
  describe(`GenerationLoop with a prefix cache (tiny Llama, ${style} graph, real ORT in this thread)`, () => {
    let llm: LoadedLlm;
    let session: ort.InferenceSession;
    let runner: DecoderSession | ContribDecoderSession;
    let tokenizer: LlmTokenizer;

    before(async () => {
      if (style === 'generic') ({ llm, session, runner } = await openTinyLlama());
      else {
        llm = await loadTinyLlama({ graphStyle: 'contrib' });
        session = await ort.InferenceSession.create(llm.onnxPath, {
          intraOpNumThreads: 1,
          extra: { session: { intra_op: { allow_spinning: '0' } } },
        });
        runner = new ContribDecoderSession(session, llm.config, { initialRows: 2 });
      }
      tokenizer = createTokenizer(llm.tokenizer);
    });
    after(async () => {
      await session?.release();
    });

    const sequence = (id: number, prompt: string | number[], overrides: Partial<SequenceInit> = {}): SequenceInit =>
      loopSequence(tokenizer, llm, id, prompt, { maxTokens: 24, ...overrides });

    function newCache(maxBytes = 64 * 1024 * 1024, blockTokens = 16): PrefixCache {
      return new PrefixCache({ layout: runner.layout, blockTokens, maxBytes, policy: new LruPolicy() });
    }

    /** Runs sequences to their end; `joins[i]` join before iteration i. Returns tokens per id and the steps run. */
    async function drive(
      joins: SequenceInit[][],
      cache?: PrefixCache,
    ): Promise<{ tokens: Map<number, number[]>; cached: Map<number, number>; steps: StepReport[] }> {
      const tokens = new Map<number, number[]>();
      const cached = new Map<number, number>();
      let finished = 0;
      const sink: LoopSink = {
        token: (id, t) => tokens.get(id)!.push(t),
        finish: () => void finished++,
        fail: (_ids, err) => {
          throw err;
        },
        prefilled: (id, n) => cached.set(id, n),
      };
      const scheduler = new GenerationScheduler({
        maxRunning: 32,
        maxBatchSize: 32,
        batchWindowMs: 0,
        strategy: 'fifo',
      });
      const loop = new GenerationLoop({
        runner,
        scheduler,
        sink,
        maxContext: llm.config.maxContext,
        ...(cache && { prefixCache: cache }),
      });
      const steps: StepReport[] = [];
      const total = joins.flat().length;
      for (let i = 0; i < 400 && (finished < total || i < joins.length); i++) {
        for (const s of joins[i] ?? []) {
          tokens.set(s.id, []);
          loop.add(s);
        }
        steps.push(...(await loop.iterate()).steps);
      }
      assert.equal(finished, total, 'every sequence finished');
      return { tokens, cached, steps };
    }

    const prefillTokens = (steps: StepReport[]) =>
      steps.filter((s) => s.phase === 'prefill').reduce((n, s) => n + s.tokens, 0);

    it('gives a prompt the same greedy tokens from cached blocks as computed, and computes only the uncached suffix', async () => {
      const prompt = `${SHARED}Once upon a time a little fox`;
      const ids = tokenizer.encode(prompt, { addBos: true });
      const cold = await drive([[sequence(1, prompt)]]);
      const cache = newCache();
      const first = await drive([[sequence(1, prompt)]], cache);
      assert.deepEqual(first.tokens.get(1), cold.tokens.get(1));
      assert.equal(first.cached.get(1), 0);
      assert.equal(prefillTokens(first.steps), ids.length);
      const again = await drive([[sequence(2, prompt)]], cache);
      assert.deepEqual(again.tokens.get(2), cold.tokens.get(1), 'a hit gives the tokens a miss gives');
      // Everything but the last (partial or whole) block comes from the cache: at least one token is computed.
      const expected = Math.floor((ids.length - 1) / 16) * 16;
      assert.equal(again.cached.get(2), expected);
      assert.equal(prefillTokens(again.steps), ids.length - expected, 'only the uncached suffix was prefilled');
      assert.ok(cache.stats.hits >= expected / 16 && cache.stats.misses > 0);
    });

    it('batches prompts with different cached prefixes and suffix lengths, and cold ones, exactly as each runs alone', async () => {
      const prompts = [
        `${SHARED}Once upon a time a little fox`,
        `${SHARED}The bear`,
        `${SHARED}A small bird sang every morning on the old oak tree near the river, and`,
        'Lily had a red ball.',
        `${SHARED.slice(0, 40)} and then`,
      ];
      const alone = new Map<number, number[]>();
      for (const [i, p] of prompts.entries()) alone.set(i, (await drive([[sequence(i, p)]])).tokens.get(i)!);
      const cache = newCache();
      await drive([[sequence(100, `${SHARED}Hello`)]], cache);
      // Warm rows with gaps between cached and new tokens, cold rows beside them, and late joiners.
      const { tokens, cached } = await drive(
        [[0, 1, 3].map((i) => sequence(i, prompts[i]!)), [], [2, 4].map((i) => sequence(i, prompts[i]!))],
        cache,
      );
      for (const [i] of prompts.entries()) assert.deepEqual(tokens.get(i), alone.get(i), `prompt ${i}`);
      assert.ok(cached.get(0)! > 0 && cached.get(1)! > 0 && cached.get(2)! > 0, 'the shared prefix was reused');
      assert.equal(cached.get(3), 0);
    });

    it("keeps a finished sequence's prompt and output, so the next turn of a conversation starts from them", async () => {
      const cache = newCache();
      const turn1 = sequence(1, `${SHARED}Tell me about the fox.`, { maxTokens: 40 });
      const out = (await drive([[turn1]], cache)).tokens.get(1)!;
      const next = [...turn1.promptIds, ...out, ...tokenizer.encode(' And the owl?')];
      const warm = await drive([[sequence(2, next)]], cache);
      const cold = await drive([[sequence(2, next)]]);
      assert.deepEqual(warm.tokens.get(2), cold.tokens.get(2));
      // The KV of all but the last generated token was kept: the whole blocks of it are reused.
      const kept = Math.floor((turn1.promptIds.length + out.length - 1) / 16) * 16;
      assert.equal(warm.cached.get(2), kept);
      assert.equal(prefillTokens(warm.steps), next.length - kept);
    });
  });
