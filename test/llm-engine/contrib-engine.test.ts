import { strict as assert } from 'node:assert';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { createTokenizer, loadTinyLlama, type LlmTokenizer, type LoadedLlm } from '../helpers/llm.js';
import { CONTRIB_SPAN_STEP, ContribDecoderSession } from '@nucleus/core/internal/engine/llm/generation/contrib-session';
import type { DecoderSession } from '@nucleus/core/internal/engine/llm/generation/decoder-session';
import type { GenerationEngine } from '@nucleus/core/internal/engine/llm/generation/generation-engine';
import {
  GenerationLoop,
  type LoopSink,
  type SequenceInit,
} from '@nucleus/core/internal/engine/llm/generation/generation-loop';
import { GenerationScheduler } from '@nucleus/core/internal/engine/llm/generation/scheduler';
import type { LogitsRow } from '@nucleus/core/internal/engine/llm/generation/sampler';
import { parseIds, requireStories, STORIES_DIR } from '../llm-formats/llm-module.js';
import { generateAll, testEngine } from './engine-helpers.js';
import { LOOP_PROMPTS, loopSequence, openTinyLlama } from './helpers.js';

ort.env.logLevel = 'fatal';

const SESSION_OPTIONS: ort.InferenceSession.SessionOptions = {
  intraOpNumThreads: 1,
  extra: { session: { intra_op: { allow_spinning: '0' } } },
};

interface Outcome {
  tokens: number[];
  reason?: string;
}

// The contrib runner (GroupQueryAttention over shared, in-place KV buffers) inside the continuous-batching loop.
describe('GenerationLoop with the contrib runner on the tiny Llama', () => {
  let llm: LoadedLlm;
  let tokenizer: LlmTokenizer;
  let session: ort.InferenceSession;
  let generic: { session: ort.InferenceSession; runner: DecoderSession };

  before(async () => {
    llm = await loadTinyLlama({ graphStyle: 'contrib' });
    tokenizer = createTokenizer(llm.tokenizer);
    session = await ort.InferenceSession.create(llm.onnxPath, SESSION_OPTIONS);
    generic = await openTinyLlama();
  });
  after(async () => {
    await session?.release();
    await generic?.session.release();
  });

  const PROMPTS = LOOP_PROMPTS;

  const sequence = (id: number, prompt: string, overrides: Partial<SequenceInit> = {}): SequenceInit =>
    loopSequence(tokenizer, llm, id, prompt, { seed: 1234 + id, ...overrides });

  async function drive(
    runner: ContribDecoderSession | DecoderSession,
    joins: SequenceInit[][],
    onIteration?: (i: number, loop: GenerationLoop) => void,
  ): Promise<{ outcomes: Map<number, Outcome>; batchSizes: number[] }> {
    const outcomes = new Map<number, Outcome>();
    const get = (id: number) => outcomes.get(id) ?? outcomes.set(id, { tokens: [] }).get(id)!;
    const sink: LoopSink = {
      token: (id, tokenId) => void get(id).tokens.push(tokenId),
      finish: (id, reason) => void (get(id).reason = reason),
      fail: (_ids, err) => {
        throw err;
      },
    };
    const scheduler = new GenerationScheduler({
      maxRunning: 32,
      maxBatchSize: 32,
      batchWindowMs: 0,
      strategy: 'priority',
    });
    const loop = new GenerationLoop({ runner, scheduler, sink, maxContext: llm.config.maxContext });
    const batchSizes: number[] = [];
    const total = joins.flat().length;
    for (let i = 0; i < 500; i++) {
      for (const s of joins[i] ?? []) {
        get(s.id);
        loop.add(s);
      }
      onIteration?.(i, loop);
      const result = await loop.iterate();
      for (const step of result.steps) if (step.phase === 'decode') batchSizes.push(step.sequences);
      if ([...outcomes.values()].filter((o) => o.reason !== undefined).length === total && i >= joins.length) break;
    }
    return { outcomes, batchSizes };
  }

  it('decodes sequences joining and leaving at different steps exactly as each alone, and as the generic graph (greedy)', async () => {
    const alone = new Map<number, Outcome>();
    const genericAlone = new Map<number, Outcome>();
    for (const [i, p] of PROMPTS.entries()) {
      alone.set(i, (await drive(new ContribDecoderSession(session, llm.config), [[sequence(i, p)]])).outcomes.get(i)!);
      genericAlone.set(i, (await drive(generic.runner, [[sequence(i, p)]])).outcomes.get(i)!);
    }
    // Two start together, others join while they decode, one leaves early (its row is reused), the last joins alone.
    const joins: SequenceInit[][] = [];
    const at = [0, 0, 3, 7, 12, 45];
    PROMPTS.forEach((p, i) => (joins[at[i]!] ??= []).push(sequence(i, p, i === 1 ? { maxTokens: 5 } : {})));
    const runner = new ContribDecoderSession(session, llm.config, { initialRows: 4 });
    const { outcomes, batchSizes } = await drive(runner, joins);
    for (const [i] of PROMPTS.entries()) {
      const want = i === 1 ? alone.get(i)!.tokens.slice(0, 5) : alone.get(i)!.tokens;
      assert.deepEqual(
        outcomes.get(i)!.tokens,
        want,
        `sequence ${i}: batched tokens differ from the tokens it gets alone`,
      );
      assert.equal(outcomes.get(i)!.reason, 'length');
      assert.deepEqual(
        alone.get(i)!.tokens,
        genericAlone.get(i)!.tokens,
        `sequence ${i}: contrib and generic graphs disagree`,
      );
    }
    assert.ok(Math.max(...batchSizes) >= 4, `the batch held several sequences (largest ${Math.max(...batchSizes)})`);
    assert.ok(batchSizes.includes(1), 'the last sequence ran alone');
    assert.equal(runner.capacity, 4, 'the rows never outgrew the first buffers');
    assert.deepEqual(runner.lengths, []);
  });

  it('keeps the others exact when a running sequence is cancelled, and grows its buffers past the first rows', async () => {
    const reference = (
      await drive(new ContribDecoderSession(session, llm.config), [[sequence(2, PROMPTS[2]!)]])
    ).outcomes.get(2)!;
    const runner = new ContribDecoderSession(session, llm.config, { initialRows: 1 });
    const { outcomes } = await drive(
      runner,
      [[sequence(0, PROMPTS[0]!), sequence(1, PROMPTS[1]!)], [sequence(2, PROMPTS[2]!)]],
      (i, loop) => {
        if (i === 4) loop.cancel(0);
      },
    );
    assert.equal(outcomes.get(0)!.reason, 'cancelled');
    assert.deepEqual(outcomes.get(2)!.tokens, reference.tokens);
    assert.ok(runner.capacity >= 3);
  });

  it('re-lays its rows when the longest outgrows the span and again when it leaves, without changing a token', async () => {
    const long = sequence(0, PROMPTS.join(' '), { maxTokens: 4 });
    const short = sequence(1, PROMPTS[2]!, { maxTokens: 40 });
    const alone = [
      (await drive(new ContribDecoderSession(session, llm.config), [[long]])).outcomes.get(0)!,
      (await drive(new ContribDecoderSession(session, llm.config), [[short]])).outcomes.get(1)!,
    ];
    const runner = new ContribDecoderSession(session, llm.config, { initialRows: 2 });
    const spans: number[] = [runner.span];
    const { outcomes } = await drive(
      runner,
      [[sequence(0, PROMPTS.join(' '), { maxTokens: 4 }), sequence(1, PROMPTS[2]!, { maxTokens: 40 })]],
      () => spans.push(runner.span),
    );
    assert.deepEqual(outcomes.get(0)!.tokens, alone[0]!.tokens);
    assert.deepEqual(outcomes.get(1)!.tokens, alone[1]!.tokens);
    assert.ok(
      long.promptIds.length > 2 * CONTRIB_SPAN_STEP,
      `the long prompt spans several steps (${long.promptIds.length} tokens)`,
    );
    assert.equal(spans[0], CONTRIB_SPAN_STEP);
    assert.ok(
      Math.max(...spans) >= long.promptIds.length,
      `the span grew to the long prompt (spans ${[...new Set(spans)].join(', ')})`,
    );
    assert.ok(
      spans.at(-1)! < Math.max(...spans) && spans.at(-1)! <= llm.config.maxContext,
      'the span shrank once the long row left',
    );
    assert.ok(spans.every((s) => s % CONTRIB_SPAN_STEP === 0 || s === llm.config.maxContext));
  });

  it('decodes a range of its rows in place as a step over every row would, leaving the others as they were', async () => {
    const prompts = [PROMPTS[0]!, PROMPTS[1]!, PROMPTS[2]!].map((p) => tokenizer.encode(p, { addBos: true }));
    const whole = new ContribDecoderSession(session, llm.config, { initialRows: 3 });
    const parts = new ContribDecoderSession(session, llm.config, { initialRows: 3 });
    await whole.admit(prompts);
    await parts.admit(prompts);
    const tokens = [5, 6, 7];
    for (let step = 0; step < 3; step++) {
      const expected = (await whole.decode(tokens)).map((row) => Array.from(row as Float32Array));
      // Rows 1..2, then row 0: between the two, row 0 has not moved.
      const tail = (await parts.decode(tokens.slice(1), 1)).map((row) => Array.from(row as Float32Array));
      assert.deepEqual(parts.lengths, [whole.lengths[0]! - 1, ...whole.lengths.slice(1)]);
      const head = (await parts.decode(tokens.slice(0, 1), 0)).map((row) => Array.from(row as Float32Array));
      assert.deepEqual(parts.lengths, whole.lengths);
      [...head, ...tail].forEach((row, r) =>
        row.forEach((v, i) => assert.ok(Math.abs(v - expected[r]![i]!) < 1e-5, `step ${step} row ${r} logit ${i}`)),
      );
    }
    await assert.rejects(parts.decode([1, 2], 2), /from row 2 for 3 rows/);
    await assert.rejects(parts.decode([1, 2]), /2 tokens from row 0 for 3 rows/);
  });

  it('fetches only the new K and V from graphs that output them, with the logits and tokens of fetching the whole present', async () => {
    const viaPresent = {
      ...llm.config,
      contribIo: { ...llm.config.contribIo!, newKey: undefined, newValue: undefined },
    };
    const appending = new ContribDecoderSession(session, llm.config, { initialRows: 3 });
    const fetching = new ContribDecoderSession(session, viaPresent, { initialRows: 3 });
    assert.equal(appending.fetchesNewKvOnly, true, 'the built contrib graph outputs new.N.key|value');
    assert.equal(fetching.fetchesNewKvOnly, false);
    const prompts = [PROMPTS[0]!, PROMPTS[1]!, PROMPTS[3]!].map((p) => tokenizer.encode(p, { addBos: true }));
    const close = (a: LogitsRow[], b: LogitsRow[], what: string) =>
      a.forEach((row, r) =>
        (row as Float32Array).forEach((v, i) =>
          assert.ok(Math.abs(v - (b[r] as Float32Array)[i]!) < 1e-5, `${what}: row ${r} logit ${i}`),
        ),
      );
    close(await appending.admit(prompts), await fetching.admit(prompts), 'prefill');
    for (let step = 0; step < 8; step++) {
      if (step === 4) {
        appending.keepRows([0, 2]);
        fetching.keepRows([0, 2]);
      }
      const tokens = appending.lengths.map((n) => (n * 7 + step) % llm.config.vocabSize);
      close(await appending.decode(tokens), await fetching.decode(tokens), `decode ${step}`);
    }
    // And inside the loop: the same greedy tokens for sequences joining and leaving.
    const joins = [
      [sequence(0, PROMPTS[0]!), sequence(1, PROMPTS[1]!, { maxTokens: 6 })],
      [],
      [sequence(2, PROMPTS[2]!)],
    ];
    const a = await drive(new ContribDecoderSession(session, llm.config, { initialRows: 2 }), joins);
    const b = await drive(new ContribDecoderSession(session, viaPresent, { initialRows: 2 }), joins);
    for (const id of [0, 1, 2])
      assert.deepEqual(a.outcomes.get(id)!.tokens, b.outcomes.get(id)!.tokens, `sequence ${id}`);
  });

  it('tracks the length of every row across admit, decode and keepRows', async () => {
    const runner = new ContribDecoderSession(session, llm.config, { initialRows: 2 });
    const ids = tokenizer.encode(PROMPTS[0]!, { addBos: true });
    await runner.admit([ids, ids.slice(0, 3)]);
    assert.deepEqual(runner.lengths, [ids.length, 3]);
    await runner.decode([5, 6]);
    assert.deepEqual(runner.lengths, [ids.length + 1, 4]);
    runner.keepRows([1]);
    assert.deepEqual(runner.lengths, [4]);
  });
});

const read = (name: string) => readFileSync(join(STORIES_DIR, name), 'utf8');

describe('GenerationEngine on stories260K with graphStyle contrib', () => {
  let engine: GenerationEngine | undefined;

  before(async function () {
    requireStories(this);
    ({ engine } = testEngine({
      models: [{ name: 'stories', path: join(STORIES_DIR, 'stories260K.gguf'), graphStyle: 'contrib' }],
      'scheduler.batchWindowMs': 20,
    }));
    await engine.start();
  });
  after(async () => {
    await engine?.stop();
  });

  it('reproduces both llama2.c greedy references exactly, decoded together in one batch', async () => {
    const fromBos = parseIds(read('reference-greedy-200.ids.txt'));
    const fromPrompt = parseIds(read('reference-prompt-64.ids.txt'));
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
    assert.equal(a.texts[0], read('reference-greedy-200.txt'));
    assert.deepEqual(b.tokens[0], fromPrompt.next.slice(forced));
  });
});
