import { strict as assert } from 'node:assert';
import type { InferenceSession } from 'onnxruntime-node';
import { createTokenizer, type LlmTokenizer, type LoadedLlm } from '../helpers/llm.js';
import type { DecoderSession } from '@nucleus/core/internal/engine/llm/generation/decoder-session';
import { FREE_NOW_MIN_BYTES } from '@nucleus/core/internal/engine/llm/generation/concatenated-kv-rows';
import {
  GenerationLoop,
  type LoopSink,
  type SequenceInit,
} from '@nucleus/core/internal/engine/llm/generation/generation-loop';
import { KvBatch } from '@nucleus/core/internal/engine/llm/generation/kv-batch';
import { DEFAULT_SAMPLING, type SamplingParams } from '@nucleus/core/internal/engine/llm/generation/sampler';
import { GenerationScheduler, type SchedulerSettings } from '@nucleus/core/internal/engine/llm/generation/scheduler';
import { LOOP_PROMPTS, loopSequence, openTinyLlama } from './helpers.js';

interface Outcome {
  tokens: number[];
  text: string;
  reason?: string;
  stop?: string;
  completionTokens?: number;
}

describe('GenerationLoop on the tiny Llama (real ORT in this thread)', () => {
  let llm: LoadedLlm;
  let session: InferenceSession;
  let runner: DecoderSession;
  let tokenizer: LlmTokenizer;

  before(async () => {
    ({ llm, session, runner } = await openTinyLlama());
    tokenizer = createTokenizer(llm.tokenizer);
  });
  after(async () => {
    await session?.release();
  });

  const PROMPTS = LOOP_PROMPTS;

  const sequence = (id: number, prompt: string, overrides: Partial<SequenceInit> = {}): SequenceInit =>
    loopSequence(tokenizer, llm, id, prompt, { seed: 1234 + id, ...overrides });

  /** Runs sequences through one loop; `joins[i]` are added before iteration i. Bounded by `maxIterations`. */
  async function drive(
    joins: SequenceInit[][],
    options: {
      settings?: Partial<SchedulerSettings>;
      onIteration?: (i: number, loop: GenerationLoop) => void;
      maxIterations?: number;
    } = {},
  ): Promise<{ outcomes: Map<number, Outcome>; batchSizes: number[]; finishOrder: number[] }> {
    const outcomes = new Map<number, Outcome>();
    const finishOrder: number[] = [];
    const get = (id: number) => outcomes.get(id) ?? outcomes.set(id, { tokens: [], text: '' }).get(id)!;
    const sink: LoopSink = {
      token: (id, tokenId, text) => {
        get(id).tokens.push(tokenId);
        get(id).text += text;
      },
      finish: (id, reason, text, completionTokens, stop) => {
        const o = get(id);
        finishOrder.push(id);
        o.text += text;
        o.reason = reason;
        o.completionTokens = completionTokens;
        if (stop !== undefined) o.stop = stop;
      },
      fail: (_ids, err) => {
        throw err;
      },
    };
    const scheduler = new GenerationScheduler({
      maxRunning: 32,
      maxBatchSize: 32,
      batchWindowMs: 0,
      strategy: 'priority',
      ...options.settings,
    });
    const loop = new GenerationLoop({ runner, scheduler, sink, maxContext: llm.config.maxContext });
    const batchSizes: number[] = [];
    const total = joins.flat().length;
    for (let i = 0; i < (options.maxIterations ?? 500); i++) {
      for (const s of joins[i] ?? []) {
        get(s.id);
        loop.add(s);
      }
      options.onIteration?.(i, loop);
      const result = await loop.iterate();
      for (const step of result.steps) if (step.phase === 'decode') batchSizes.push(step.sequences);
      const done = [...outcomes.values()].filter((o) => o.reason !== undefined).length;
      if (done === total && i >= joins.length) break;
    }
    return { outcomes, batchSizes, finishOrder };
  }

  it('decodes sequences that join the batch at different steps exactly as each one decoded alone (greedy)', async () => {
    const alone = new Map<number, Outcome>();
    for (const [i, p] of PROMPTS.entries()) {
      const { outcomes } = await drive([[sequence(i, p)]]);
      alone.set(i, outcomes.get(i)!);
    }
    // Two start together, the rest arrive while they are decoding, one only after the first ones left.
    const joins: SequenceInit[][] = [];
    const at = [0, 0, 3, 7, 12, 35];
    PROMPTS.forEach((p, i) => (joins[at[i]!] ??= []).push(sequence(i, p)));
    const { outcomes, batchSizes } = await drive(joins);
    for (const [i] of PROMPTS.entries()) {
      const together = outcomes.get(i)!;
      assert.equal(together.tokens.length, 30, `sequence ${i} generated 30 tokens`);
      assert.deepEqual(
        together.tokens,
        alone.get(i)!.tokens,
        `sequence ${i}: batched tokens differ from the tokens it gets alone`,
      );
      assert.equal(together.text, alone.get(i)!.text);
      assert.equal(together.reason, 'length');
    }
    assert.ok(
      Math.max(...batchSizes) >= 4,
      `the batch really held several sequences (largest decode batch ${Math.max(...batchSizes)})`,
    );
    assert.ok(batchSizes.includes(1), 'the last sequence ran alone after the others left');
  });

  it('gives a seeded sampled sequence the same tokens whatever runs beside it', async () => {
    const params: SamplingParams = { ...DEFAULT_SAMPLING, temperature: 0.9, topP: 0.95, topK: 50 };
    const alone = (await drive([[sequence(1, PROMPTS[1]!, { params, seed: 42 })]])).outcomes.get(1)!;
    const crowd = [0, 2, 3].map((i) => sequence(i, PROMPTS[i]!, { params, seed: 7 + i }));
    const together = (
      await drive([[crowd[0]!], [sequence(1, PROMPTS[1]!, { params, seed: 42 }), crowd[1]!], [crowd[2]!]])
    ).outcomes.get(1)!;
    assert.deepEqual(together.tokens, alone.tokens);
    const otherSeed = (await drive([[sequence(1, PROMPTS[1]!, { params, seed: 43 })]])).outcomes.get(1)!;
    assert.notDeepEqual(otherSeed.tokens, alone.tokens, 'another seed samples other tokens');
  });

  it('drops a cancelled running sequence before the next step; the others continue unchanged', async () => {
    const reference = (await drive([[sequence(0, PROMPTS[0]!)], [sequence(1, PROMPTS[1]!)]])).outcomes;
    let runningAfterCancel = -1;
    const { outcomes } = await drive([[sequence(0, PROMPTS[0]!)], [sequence(1, PROMPTS[1]!)]], {
      onIteration: (i, loop) => {
        if (i === 5) loop.cancel(0);
        if (i === 6) runningAfterCancel = loop.running;
      },
    });
    assert.equal(outcomes.get(0)!.reason, 'cancelled');
    assert.ok(
      outcomes.get(0)!.tokens.length < 30 && outcomes.get(0)!.tokens.length >= 4,
      `cancelled after a few tokens (${outcomes.get(0)!.tokens.length})`,
    );
    assert.deepEqual(outcomes.get(0)!.tokens, reference.get(0)!.tokens.slice(0, outcomes.get(0)!.tokens.length));
    assert.equal(runningAfterCancel, 1, 'its slot was freed within one step');
    assert.deepEqual(outcomes.get(1)!.tokens, reference.get(1)!.tokens);
  });

  it('reports its KV use as the positions running sequences hold over what its slots hold', async () => {
    const seen: number[] = [];
    const prompts = [sequence(0, PROMPTS[0]!), sequence(1, PROMPTS[1]!)];
    const held = prompts[0]!.promptIds.length + prompts[1]!.promptIds.length;
    await drive([prompts], {
      settings: { maxRunning: 4, maxBatchSize: 4 },
      onIteration: (_i, loop) => seen.push(loop.kvUsage),
    });
    assert.equal(seen[0], 0, 'nothing is held before the first step');
    // After the first step both sequences hold their prompts (and a generated token each, at most).
    const capacity = 4 * llm.config.maxContext;
    assert.ok(seen[1]! >= held / capacity && seen[1]! <= (held + 2) / capacity, `use after the first step: ${seen[1]}`);
    assert.ok(Math.max(...seen) > seen[1]!, 'it grows as they decode');
    assert.ok(Math.max(...seen) < 1);
  });

  it('finishes with stop at an end-of-sequence token, which is counted but not emitted', async () => {
    const plain = (await drive([[sequence(0, PROMPTS[3]!, { maxTokens: 20 })]])).outcomes.get(0)!;
    // Declare the 6th generated token an end-of-sequence token: the output must end right before it.
    const eos = plain.tokens[5]!;
    const first = plain.tokens.indexOf(eos);
    const stopped = (
      await drive([[sequence(0, PROMPTS[3]!, { maxTokens: 20, ignoreEos: false, eosTokenIds: [eos] })]])
    ).outcomes.get(0)!;
    assert.equal(stopped.reason, 'stop');
    assert.deepEqual(stopped.tokens, plain.tokens.slice(0, first));
    assert.equal(stopped.completionTokens, first + 1);
  });

  it('admits by priority when slots are scarce, and by arrival within a priority', async () => {
    const low = sequence(0, PROMPTS[0]!, { priority: 'low', maxTokens: 3 });
    const normal = sequence(1, PROMPTS[1]!, { priority: 'normal', maxTokens: 3 });
    const high = sequence(2, PROMPTS[2]!, { priority: 'high', maxTokens: 3 });
    const normal2 = sequence(3, PROMPTS[3]!, { priority: 'normal', maxTokens: 3 });
    const { finishOrder, batchSizes } = await drive([[low, normal, high, normal2]], { settings: { maxRunning: 1 } });
    assert.deepEqual(finishOrder, [2, 1, 3, 0]);
    assert.equal(Math.max(...batchSizes), 1, 'never more than maxRunning sequences in a step');
    const fifo = await drive(
      [
        [low, normal, high, normal2].map((s) => ({
          ...s,
          decoder: tokenizer.createStreamDecoder({ prefix: s.promptIds }),
        })),
      ],
      {
        settings: { maxRunning: 1, strategy: 'fifo' },
      },
    );
    assert.deepEqual(fifo.finishOrder, [0, 1, 2, 3]);
  });

  it('tells the sink when the prefill is done, after the first tokens and before the decode step of the same iteration', async () => {
    const events: string[] = [];
    const sink: LoopSink = {
      token: (id) => void events.push(`token ${id}`),
      finish: (id) => void events.push(`finish ${id}`),
      fail: (_ids, err) => {
        throw err;
      },
      prefillDone: () => void events.push('prefill done'),
    };
    const loop = new GenerationLoop({
      runner,
      scheduler: new GenerationScheduler({ maxRunning: 4, maxBatchSize: 4, batchWindowMs: 0, strategy: 'priority' }),
      sink,
      maxContext: llm.config.maxContext,
    });
    loop.add(sequence(0, PROMPTS[0]!, { maxTokens: 8 }));
    await loop.iterate();
    assert.deepEqual(events, ['token 0', 'prefill done', 'token 0']);
    events.length = 0;
    loop.add(sequence(1, PROMPTS[1]!, { maxTokens: 8 }));
    await loop.iterate();
    assert.deepEqual(events, ['token 1', 'prefill done', 'token 0', 'token 1']);
    events.length = 0;
    await loop.iterate();
    assert.deepEqual(events, ['token 0', 'token 1'], 'an iteration without newcomers has no prefill to report');
  });

  it('re-packs the KV cache left-padded when rows join and leave', () => {
    const layout = { numLayers: 1, numKvHeads: 1, headDim: 2, dtype: 'float32' as const };
    // Row 0 holds 2 tokens in a cache 3 long, row 1 holds 3.
    const a = KvBatch.fromTensors(layout, [2, 3], 3, [
      { key: Float32Array.from([0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5]), value: new Float32Array(12) },
    ]);
    const b = KvBatch.fromTensors(layout, [1], 1, [{ key: Float32Array.from([9, 9]), value: new Float32Array(2) }]);
    const g = KvBatch.gather(layout, [
      { batch: b, row: 0 },
      { batch: a, row: 0 },
    ]);
    assert.deepEqual(g.lengths, [1, 2]);
    assert.equal(g.pastLength, 2);
    assert.deepEqual(Array.from(g.layers[0]!.key), [0, 0, 9, 9, 1, 1, 2, 2]);
    assert.deepEqual(Array.from(g.attentionMask(1)), [0n, 1n, 1n, 1n, 1n, 1n]);
  });

  it('frees a released batch at once, while the test still holds it, so no garbage collection could have', async () => {
    const layout = { numLayers: 2, numKvHeads: 4, headDim: 64, dtype: 'float32' as const };
    const size = 16 * 4 * 1024 * 64; // 16 MiB per tensor, 64 MiB in all
    const layers = Array.from({ length: 2 }, () => ({ key: new Float32Array(size), value: new Float32Array(size) }));
    const batch = KvBatch.fromTensors(layout, new Array<number>(16).fill(1024), 1024, layers);
    const before = process.memoryUsage().arrayBuffers;
    batch.release();
    assert.ok(
      layers.every((l) => l.key.length === 0 && l.value.length === 0),
      'the tensors are detached',
    );
    let freed = 0;
    for (let turn = 0; turn < 100 && freed < batch.bytes - (1 << 20); turn++) {
      await new Promise((resolve) => setTimeout(resolve, 5));
      freed = before - process.memoryUsage().arrayBuffers;
    }
    assert.ok(
      freed >= batch.bytes - (1 << 20),
      `${(freed / 2 ** 20).toFixed(1)} MiB of ${(batch.bytes / 2 ** 20).toFixed(0)} came back`,
    );
  });

  it('frees every cache it replaces as sequences join, decode and leave, and keeps the one it runs', async () => {
    const made: KvBatch[] = [];
    const recording = {
      layout: runner.layout,
      prefill: async (prompts: readonly (readonly number[])[], past?: KvBatch) => {
        const r = await runner.prefill(prompts, past);
        made.push(r.kv);
        return r;
      },
      decode: async (kv: KvBatch, tokens: readonly number[]) => {
        const r = await runner.decode(kv, tokens);
        made.push(r.kv);
        return r;
      },
    };
    const sink: LoopSink = {
      token: () => {},
      finish: () => {},
      fail: (_ids, err) => {
        throw err;
      },
    };
    // This model's caches are far below the default threshold: every one is freed here.
    const scheduler = new GenerationScheduler({
      maxRunning: 8,
      maxBatchSize: 8,
      batchWindowMs: 0,
      strategy: 'priority',
    });
    const loop = new GenerationLoop({
      runner: recording,
      scheduler,
      sink,
      maxContext: llm.config.maxContext,
      freeNowMinBytes: 0,
    });
    loop.add(sequence(0, PROMPTS[0]!, { maxTokens: 12 }));
    loop.add(sequence(1, PROMPTS[1]!, { maxTokens: 4 }));
    for (let i = 0; i < 6; i++) await loop.iterate();
    loop.add(sequence(2, PROMPTS[2]!, { maxTokens: 30 }));
    for (let i = 0; i < 8; i++) await loop.iterate();
    const detached = (kv: KvBatch) =>
      kv.layers.every((l) => l.key.buffer.byteLength === 0 && l.value.buffer.byteLength === 0);
    assert.ok(made.length > 10, `${made.length} caches`);
    assert.equal(loop.running, 1, 'sequences 0 and 1 have left');
    assert.deepEqual(
      made.slice(0, -1).filter((kv) => !detached(kv)).length,
      0,
      'every cache a step returned was freed once replaced',
    );
    assert.ok(!detached(made.at(-1)!), "the last decode step's cache is the one running");
    for (let i = 0; i < 40 && loop.running > 0; i++) await loop.iterate();
    assert.equal(loop.running, 0, 'the sequence still running decoded on to its end from the kept cache');
    // By default caches this small are left to the garbage collector.
    made.length = 0;
    const byDefault = new GenerationLoop({ runner: recording, scheduler, sink, maxContext: llm.config.maxContext });
    byDefault.add(sequence(3, PROMPTS[0]!, { maxTokens: 6 }));
    for (let i = 0; i < 10 && (i === 0 || byDefault.running > 0); i++) await byDefault.iterate();
    assert.ok(made.length > 3 && made.every((kv) => kv.bytes < FREE_NOW_MIN_BYTES && !detached(kv)));
  });
});
