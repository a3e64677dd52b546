import { strict as assert } from 'node:assert';
import * as ort from 'onnxruntime-node';
import { createTokenizer, loadTinyLlama, type LlmTokenizer, type LoadedLlm } from '../helpers/llm.js';
import { isAllocationFailure } from '@nucleus/core/internal/engine/allocation-failure';
import {
  ContribDecoderSession,
  type ResidentKvRunner,
} from '@nucleus/core/internal/engine/llm/generation/contrib-session';
import { DecoderSession, type DecoderRunner } from '@nucleus/core/internal/engine/llm/generation/decoder-session';
import {
  withFaultInjection,
  type GenerationFaultInjection,
} from '@nucleus/core/internal/engine/llm/generation/fault-injecting-runner';
import { GenerationLoop, type SequenceInit } from '@nucleus/core/internal/engine/llm/generation/generation-loop';
import { GenerationScheduler } from '@nucleus/core/internal/engine/llm/generation/scheduler';
import { loopSequence } from './helpers.js';

const PROMPTS = ['Once upon a time', 'Lily', 'The little dog', 'and the birds'];

// The tiny Llama's KV per token: 2 layers × key and value × 2 heads × 16 dims × 4 bytes.
const KV_BYTES_PER_TOKEN = 2 * 2 * 2 * 16 * 4;

/** A prompt of `length` token ids, different for each `seed`. */
function prompt(length: number, seed: number): number[] {
  return [1, ...Array.from({ length: length - 1 }, (_, i) => 3 + ((i * 7 + seed * 13) % 250))];
}

// Both graph styles: the generic runner's steps are split by gathering rows into smaller batches, the contrib runner's
// by decoding a range of its rows in place and admitting newcomers in parts.
for (const style of ['generic', 'contrib'] as const)
  describe(`GenerationLoop after an allocation failure (tiny Llama, ${style} graph, in this thread)`, () => {
    let llm: LoadedLlm;
    let session: ort.InferenceSession;
    let tokenizer: LlmTokenizer;
    before(async () => {
      llm = await loadTinyLlama({ graphStyle: style });
      session = await ort.InferenceSession.create(llm.onnxPath, {
        intraOpNumThreads: 1,
        extra: { session: { intra_op: { allow_spinning: '0' } } },
      });
      tokenizer = createTokenizer(llm.tokenizer);
    });
    after(async () => {
      await session?.release();
    });

    /** A fresh runner (a contrib one keeps rows), failing as `faults` says when given. */
    const newRunner = (faults?: GenerationFaultInjection): DecoderRunner | ResidentKvRunner => {
      const real =
        style === 'contrib'
          ? new ContribDecoderSession(session, llm.config, { initialRows: 4 })
          : new DecoderSession(session, llm.config);
      return faults ? withFaultInjection(real, faults, () => 0) : real;
    };

    const sequence = (id: number, text: string | number[], maxTokens = 110): SequenceInit =>
      loopSequence(tokenizer, llm, id, text, { seed: 1, maxTokens });

    interface Outcome {
      tokens: Map<number, number[]>;
      failed: Map<number, unknown>;
      finished: Set<number>;
      loop: GenerationLoop;
    }

    /** Runs sequences to their end; `joins[i]` join before iteration i. */
    async function drive(
      stepRunner: DecoderRunner | ResidentKvRunner,
      joins: SequenceInit[][],
      onIteration?: (loop: GenerationLoop) => void,
    ): Promise<Outcome> {
      const tokens = new Map<number, number[]>();
      const failed = new Map<number, unknown>();
      const finished = new Set<number>();
      const all = joins.flat();
      const loop = new GenerationLoop({
        runner: stepRunner,
        scheduler: new GenerationScheduler({ maxRunning: 4, maxBatchSize: 4, batchWindowMs: 0, strategy: 'fifo' }),
        maxContext: llm.config.maxContext,
        sink: {
          token: (id, tokenId) => tokens.set(id, [...(tokens.get(id) ?? []), tokenId]),
          finish: (id) => finished.add(id),
          fail: (ids, err) => ids.forEach((id) => failed.set(id, err)),
        },
      });
      for (let i = 0; finished.size + failed.size < all.length; i++) {
        assert.ok(i < 1000, 'the loop ends');
        for (const s of joins[i] ?? []) loop.add(s);
        await loop.iterate();
        onIteration?.(loop);
      }
      assert.equal(loop.running, 0);
      return { tokens, failed, finished, loop };
    }

    /** Each sequence's tokens when it runs with nothing else and no limit. */
    async function alone(sequences: () => SequenceInit[]): Promise<Map<number, number[]>> {
      const expected = new Map<number, number[]>();
      for (const s of sequences()) expected.set(s.id, (await drive(newRunner(), [[s]])).tokens.get(s.id)!);
      return expected;
    }

    it('runs steps split at the size that fit, tries the full batch again once memory is back, and decodes exactly as without the limit', async () => {
      const sequences = () => PROMPTS.map((p, i) => sequence(i, p));
      const expected = (await drive(newRunner(), [sequences()])).tokens;
      // Four rows fit up to ~50 positions; from there on, two do.
      const faults: GenerationFaultInjection = { memoryLimitBytes: 4 * 50 * KV_BYTES_PER_TOKEN };
      const caps: (number | undefined)[] = [];
      const running: number[] = [];
      const { tokens, failed, loop } = await drive(newRunner(faults), [sequences()], (l) => {
        caps.push(l.rowCap);
        running.push(l.running);
        // Memory comes back as soon as the steps were split.
        if (l.rowCap !== undefined) delete faults.memoryLimitBytes;
      });
      assert.equal(failed.size, 0);
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

    it('fails only the longest sequence once it cannot decode even alone; the others decode exactly as alone', async () => {
      // 110 positions fit one row; the long prompt needs more after 10 tokens, the short ones never do.
      const sequences = () => [
        sequence(0, prompt(100, 1), 30),
        sequence(1, 'Lily', 30),
        sequence(2, 'The little dog', 30),
      ];
      const expected = await alone(sequences);
      const { tokens, failed, finished, loop } = await drive(
        newRunner({ memoryLimitBytes: 110 * KV_BYTES_PER_TOKEN }),
        [sequences()],
      );
      assert.deepEqual([...failed.keys()], [0]);
      assert.ok(isAllocationFailure(failed.get(0)), String(failed.get(0)));
      assert.deepEqual([...finished].sort(), [1, 2]);
      assert.deepEqual(tokens.get(1), expected.get(1));
      assert.deepEqual(tokens.get(2), expected.get(2));
      // It ran, alone, until its row no longer fitted (the prefill's token, then a step for each position up to 110):
      // its tokens are the first of its own.
      const got = tokens.get(0)!;
      assert.equal(got.length, 1 + 110 - 100);
      assert.deepEqual(got, expected.get(0)!.slice(0, got.length));
      assert.equal(loop.recovery.failedAlone, 1);
      assert.ok(loop.recovery.splits >= 2);
    });

    it('fails only a newcomer whose prompt cannot be prefilled even alone; the one joining with it and those running go on', async () => {
      const sequences = () => [
        sequence(0, 'Once upon a time', 24),
        sequence(1, prompt(150, 2), 24),
        sequence(2, 'and the birds', 24),
      ];
      const expected = await alone(sequences);
      const [running, big, small] = sequences();
      // 120 positions: the running sequence and the short newcomer fit, the 150-token prompt does not even alone.
      const { tokens, failed, finished } = await drive(newRunner({ memoryLimitBytes: 120 * KV_BYTES_PER_TOKEN }), [
        [running!],
        [],
        [],
        [big!, small!],
      ]);
      assert.deepEqual([...failed.keys()], [1]);
      assert.ok(isAllocationFailure(failed.get(1)), String(failed.get(1)));
      assert.equal(tokens.get(1), undefined, 'it produced nothing');
      assert.deepEqual([...finished].sort(), [0, 2]);
      assert.deepEqual(tokens.get(0), expected.get(0));
      assert.deepEqual(tokens.get(2), expected.get(2));
    });
  });
