import { strict as assert } from 'node:assert';
import type { InferenceSession } from 'onnxruntime-node';
import { createTokenizer, type LlmTokenizer, type LoadedLlm } from '@nucleus/core/internal/engine/llm/index';
import type { DecoderRunner } from '@nucleus/core/internal/engine/llm/generation/decoder-session';
import { FaultInjectingRunner, type GenerationFaultInjection } from '@nucleus/core/internal/engine/llm/generation/fault-injecting-runner';
import { GenerationLoop, type SequenceInit } from '@nucleus/core/internal/engine/llm/generation/generation-loop';
import { DEFAULT_SAMPLING } from '@nucleus/core/internal/engine/llm/generation/sampler';
import { GenerationScheduler } from '@nucleus/core/internal/engine/llm/generation/scheduler';
import { openTinyLlama } from './helpers.js';

const PROMPTS = ['Once upon a time', 'Lily', 'The little dog', 'and the birds'];

describe('GenerationLoop after an allocation failure (tiny Llama in this thread)', () => {
  let llm: LoadedLlm;
  let session: InferenceSession;
  let runner: DecoderRunner;
  let tokenizer: LlmTokenizer;
  before(async () => {
    ({ llm, session, runner } = await openTinyLlama());
    tokenizer = createTokenizer(llm.tokenizer);
  });
  after(async () => {
    await session?.release();
  });

  const sequence = (id: number, prompt: string): SequenceInit => {
    const promptIds = tokenizer.encode(prompt, { addBos: true });
    return {
      id,
      promptIds,
      params: { ...DEFAULT_SAMPLING, temperature: 0 },
      seed: 1,
      maxTokens: 110,
      stop: [],
      eosTokenIds: llm.config.eosTokenIds,
      ignoreEos: true,
      priority: 'normal',
      decoder: tokenizer.createStreamDecoder({ prefix: promptIds }),
    };
  };

  async function run(stepRunner: DecoderRunner, onIteration?: (loop: GenerationLoop) => void): Promise<{ tokens: number[][]; loop: GenerationLoop }> {
    const tokens: number[][] = PROMPTS.map(() => []);
    let open = PROMPTS.length;
    const loop = new GenerationLoop({
      runner: stepRunner,
      scheduler: new GenerationScheduler({ maxRunning: 4, maxBatchSize: 4, batchWindowMs: 0, strategy: 'fifo' }),
      maxContext: llm.config.maxContext,
      sink: {
        token: (id, tokenId) => tokens[id]!.push(tokenId),
        finish: () => open--,
        fail: (ids, err) => assert.fail(`sequences ${ids.join(', ')} failed: ${String(err)}`),
      },
    });
    PROMPTS.forEach((p, i) => loop.add(sequence(i, p)));
    for (let i = 0; open > 0; i++) {
      assert.ok(i < 1000, 'the loop ends');
      await loop.iterate();
      onIteration?.(loop);
    }
    return { tokens, loop };
  }

  it('runs steps split at the size that fit, tries the full batch again once memory is back, and decodes exactly as without the limit', async () => {
    const expected = (await run(runner)).tokens;
    // Four rows fit up to ~50 positions; from there on, two do.
    const faults: GenerationFaultInjection = { memoryLimitBytes: 4 * 50 * 2 * 2 * 2 * 16 * 4 };
    const caps: (number | undefined)[] = [];
    const running: number[] = [];
    const { tokens, loop } = await run(new FaultInjectingRunner(runner, faults, () => 0), (l) => {
      caps.push(l.rowCap);
      running.push(l.running);
      // Memory comes back as soon as the steps were split.
      if (l.rowCap !== undefined) delete faults.memoryLimitBytes;
    });
    assert.deepEqual(tokens, expected);
    assert.equal(loop.recovery.failedAlone, 0);
    assert.ok(loop.recovery.splits >= 1);
    const split = caps.indexOf(2);
    assert.ok(split > 0, `steps were split in two: ${caps.join(',')}`);
    const whole = caps.indexOf(undefined, split);
    assert.ok(whole > split, 'the full batch was tried again');
    assert.equal(running[whole], 4, 'while all four still ran');
    assert.ok(whole - split >= 32, `after ${whole - split} steps at the cap`);
  });
});
