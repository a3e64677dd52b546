import { strict as assert } from 'node:assert';
import { join } from 'node:path';
import type { GenerationEvent, TokenLogprobs } from '@nucleus/sdk';
import type { GenerationEngine } from '@nucleus/core/internal/engine/llm/generation/generation-engine';
import { tokenLogprobs } from '@nucleus/core/internal/engine/llm/generation/token-logprobs';
import { ORACLE_DIR, requireOracle } from '../llm-formats/llm-module.js';
import { llamaCppRef } from '../llm-formats/oracle-refs.js';
import { generateAll, testEngine } from './engine-helpers.js';

// The oracle README's tolerance against llama.cpp for quant-zoo-F32 (logit differences, and log-probs alike).
const TOLERANCE = 0.05;

describe('token log-probs', () => {
  it('are the log-softmax of the raw logits, the top ones best first, ties to the lower id', () => {
    const logits = new Float32Array([1, 3, 2, 3, -1]);
    const z = Math.log(logits.reduce((s, v) => s + Math.exp(v), 0));
    const lp = tokenLogprobs(logits, 2, 3);
    assert.ok(Math.abs(lp.logprob - (2 - z)) < 1e-6);
    assert.deepEqual(
      lp.top.map(([id]) => id),
      [1, 3, 2],
    );
    for (const [id, v] of lp.top) assert.ok(Math.abs(v - (logits[id]! - z)) < 1e-6);
    assert.deepEqual(tokenLogprobs(logits, 0, 0).top, []);
  });

  describe('through the engine on quant-zoo-F32.gguf, against llama.cpp n_probs (oracle refs)', function () {
    this.timeout(180_000);
    let engine: GenerationEngine | undefined;

    before(async function () {
      requireOracle(this);
      ({ engine } = testEngine({ models: [{ name: 'zoo', path: join(ORACLE_DIR, 'quant-zoo-F32.gguf') }] }));
      await engine.start();
    });
    after(async () => {
      await engine?.stop();
    });

    for (const name of ['short', 'paragraph'])
      it(`matches the top-5 ids and log-probs of every greedy step of "${name}"`, async () => {
        const ref = llamaCppRef('quant-zoo-F32').prompts.find((p) => p.name === name)!;
        const steps: TokenLogprobs[] = [];
        const out = await generateAll(
          engine!,
          {
            model: 'zoo',
            prompt: ref.prompt_ids,
            maxTokens: ref.generated_ids.length,
            temperature: 0,
            ignoreEos: true,
            logprobs: 10,
          },
          undefined,
          (e) => e.type === 'token' && steps.push(e.logprobs!),
        );
        assert.deepEqual(out.tokens[0], ref.generated_ids);
        assert.equal(steps.length, ref.steps.length);
        ref.steps.forEach((step, k) => {
          const ours = steps[k]!;
          assert.equal(ours.tokenId, step.id);
          assert.equal(ours.top[0]!.tokenId, step.id, `step ${k}: the chosen token is the most likely one`);
          assert.ok(Math.abs(ours.logprob - step.top5[0]![1]) <= TOLERANCE, `step ${k}: logprob ${ours.logprob}`);
          // Every one of llama.cpp's top 5 is among our top 10 with its log-prob, in llama.cpp's order wherever that
          // order is clear by more than twice the tolerance; so is the set of the top 5 where the 6th is clearly below.
          const rankOf = (id: number) => ours.top.findIndex((t) => t.tokenId === id);
          for (const [rank, [id, logprob]] of step.top5.entries()) {
            const found = ours.top[rankOf(id)];
            assert.ok(found, `step ${k}: token ${id} missing from our top 10`);
            assert.ok(
              Math.abs(found.logprob - logprob) <= TOLERANCE,
              `step ${k}: token ${id}: ${found.logprob} vs ${logprob}`,
            );
            const next = step.top5[rank + 1];
            if (next && logprob - next[1] > 2 * TOLERANCE) assert.ok(rankOf(id) < rankOf(next[0]), `step ${k}: order`);
          }
          if (step.top5[4]![1] - ours.top[5]!.logprob > 2 * TOLERANCE)
            assert.deepEqual(
              ours.top
                .slice(0, 5)
                .map((t) => t.tokenId)
                .sort(),
              step.top5.map(([id]) => id).sort(),
            );
          for (let i = 1; i < ours.top.length; i++) assert.ok(ours.top[i - 1]!.logprob >= ours.top[i]!.logprob);
        });
      });

    it('are raw-logit log-probs also when sampling with temperature and penalties, and absent unless asked', async () => {
      const events: GenerationEvent[] = [];
      await generateAll(
        engine!,
        {
          model: 'zoo',
          prompt: 'Once upon a time',
          maxTokens: 8,
          temperature: 1.5,
          frequencyPenalty: 1,
          seed: 3,
          logprobs: 0,
        },
        undefined,
        (e) => events.push(e),
      );
      const tokens = events.filter((e) => e.type === 'token');
      assert.equal(tokens.length, 8);
      for (const t of tokens) {
        assert.ok(t.logprobs && t.logprobs.logprob <= 0 && Number.isFinite(t.logprobs.logprob));
        assert.deepEqual(t.logprobs.top, []);
        assert.equal(typeof t.logprobs.token, 'string');
      }
      const plain: GenerationEvent[] = [];
      await generateAll(engine!, { model: 'zoo', prompt: 'Once upon a time', maxTokens: 4 }, undefined, (e) =>
        plain.push(e),
      );
      for (const t of plain) if (t.type === 'token') assert.equal(t.logprobs, undefined);
    });

    it('refuses top_logprobs past 20 with a 400 naming the field', async () => {
      await assert.rejects(engine!.generate({ model: 'zoo', prompt: 'x', logprobs: 21 }), (err: Error) => {
        const e = err as Error & { status: number; param?: string };
        assert.equal(e.status, 400);
        assert.equal(e.param, 'top_logprobs');
        return true;
      });
    });
  });
});
