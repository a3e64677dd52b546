import { strict as assert } from 'node:assert';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { DraftModelProposer } from '@nucleus/plugin-spec-decode';
import { createTokenizer, loadGguf, type LlmTokenizer, type LoadedLlm } from '../helpers/llm.js';
import { ContribDecoderSession } from '@nucleus/core/internal/engine/llm/generation/contrib-session';
import { DecoderSession } from '@nucleus/core/internal/engine/llm/generation/decoder-session';
import { DraftModelRunner } from '@nucleus/core/internal/engine/llm/generation/draft-model-runner';
import {
  GenerationLoop,
  type LoopSink,
  type SequenceInit,
} from '@nucleus/core/internal/engine/llm/generation/generation-loop';
import type { Speculation, SpeculationStats } from '@nucleus/core/internal/engine/llm/generation/speculative-step';
import { GenerationScheduler } from '@nucleus/core/internal/engine/llm/generation/scheduler';
import { loopSequence } from '../llm-engine/helpers.js';
import { requireStories, STORIES_DIR } from '../llm-formats/llm-module.js';

const ZOO = join(STORIES_DIR, '..', 'llm-oracle', 'quant-zoo-Q8_0.gguf');
const STORY = 'Lily and Ben went to the park. Lily saw a big red ball. Ben saw a big red ball too. Lily and Ben';
const PROMPTS = [STORY, 'Once upon a time', 'The cat sat on the mat. The cat'];
const SESSION_OPTIONS: ort.InferenceSession.SessionOptions = {
  intraOpNumThreads: 1,
  extra: { session: { intra_op: { allow_spinning: '0' } } },
};

// Draft-model speculation in the loop on stories260K, both graph styles: the draft is the model's own first layers
// (self-speculation, an early-exit graph the GGUF format builds) or another model with the same 512-token vocabulary
// (quant-zoo, random weights: its drafts are nearly always wrong). Greedy output must be what plain decoding gives.
for (const style of ['generic', 'contrib'] as const)
  describe(`draft-model speculation on stories260K (${style} graph)`, () => {
    let cacheDir: string;
    let llm: LoadedLlm;
    let tokenizer: LlmTokenizer;
    const sessions: ort.InferenceSession[] = [];
    let session: ort.InferenceSession;

    before(async function () {
      requireStories(this);
      cacheDir = mkdtempSync(join(tmpdir(), 'spec-draft-'));
      llm = await loadGguf(join(STORIES_DIR, 'stories260K.gguf'), { cacheDir, graphStyle: style });
      tokenizer = createTokenizer(llm.tokenizer);
      session = await ort.InferenceSession.create(llm.onnxPath, SESSION_OPTIONS);
      sessions.push(session);
    });
    after(async () => {
      for (const s of sessions) await s.release();
      if (cacheDir) rmSync(cacheDir, { recursive: true, force: true });
    });

    async function draftOf(path: string, layers?: number): Promise<{ runner: DraftModelRunner; draft: LoadedLlm }> {
      const draft = await loadGguf(path, { cacheDir, graphStyle: style, ...(layers !== undefined && { layers }) });
      const s = await ort.InferenceSession.create(draft.onnxPath, SESSION_OPTIONS);
      sessions.push(s);
      return { runner: new DraftModelRunner(s, draft.config), draft };
    }

    async function drive(
      inits: SequenceInit[],
      speculation?: Speculation,
    ): Promise<{ tokens: Map<number, number[]>; stats?: SpeculationStats }> {
      const tokens = new Map<number, number[]>(inits.map((s) => [s.id, []]));
      let finished = 0;
      const sink: LoopSink = {
        token: (id, t) => void tokens.get(id)!.push(t),
        finish: () => void finished++,
        fail: (_ids, err) => {
          throw err;
        },
      };
      const runner =
        style === 'contrib'
          ? new ContribDecoderSession(session, llm.config, { initialRows: inits.length })
          : new DecoderSession(session, llm.config);
      const loop = new GenerationLoop({
        runner,
        scheduler: new GenerationScheduler({ maxRunning: 8, maxBatchSize: 8, batchWindowMs: 0, strategy: 'fifo' }),
        sink,
        maxContext: llm.config.maxContext,
        ...(speculation && { speculation }),
      });
      // The second sequence joins while the first runs: continuous batching with speculation.
      loop.add(inits[0]!);
      await loop.iterate();
      for (const init of inits.slice(1)) loop.add(init);
      for (let i = 0; i < 2000 && finished < inits.length; i++) await loop.iterate();
      assert.equal(finished, inits.length, 'every sequence finished');
      return { tokens, ...(loop.speculation && { stats: { ...loop.speculation } }) };
    }

    // Requests one after the other to one loop, as a served model's worker takes them; the counters after each.
    async function driveInTurn(
      inits: SequenceInit[],
      speculation: Speculation,
      draftRuns: () => number,
    ): Promise<{ tokens: number[]; stats: SpeculationStats; draftRuns: number }[]> {
      const tokens = new Map<number, number[]>(inits.map((s) => [s.id, []]));
      let finished = 0;
      const loop = new GenerationLoop({
        runner:
          style === 'contrib'
            ? new ContribDecoderSession(session, llm.config)
            : new DecoderSession(session, llm.config),
        scheduler: new GenerationScheduler({ maxRunning: 1, maxBatchSize: 1, batchWindowMs: 0, strategy: 'fifo' }),
        sink: {
          token: (id, t) => void tokens.get(id)!.push(t),
          finish: () => void finished++,
          fail: (_ids, err) => {
            throw err;
          },
        },
        maxContext: llm.config.maxContext,
        speculation,
      });
      const out: { tokens: number[]; stats: SpeculationStats; draftRuns: number }[] = [];
      for (const [i, init] of inits.entries()) {
        const runs = draftRuns();
        loop.add(init);
        for (let n = 0; n < 2000 && finished <= i; n++) await loop.iterate();
        assert.equal(finished, i + 1, 'the request finished');
        out.push({ tokens: tokens.get(init.id)!, stats: { ...loop.speculation! }, draftRuns: draftRuns() - runs });
      }
      return out;
    }

    const sequences = (maxTokens = 60): SequenceInit[] =>
      PROMPTS.map((p, i) => loopSequence(tokenizer, llm, i + 1, p, { maxTokens }));

    it('self-speculation (the first 2 of 5 layers as the draft) gives the greedy output of plain decoding', async () => {
      const { runner, draft } = await draftOf(join(STORIES_DIR, 'stories260K.gguf'), 2);
      assert.equal(draft.config.numLayers, 2);
      assert.equal(llm.config.numLayers, 5);
      const plain = await drive(sequences());
      const spec = await drive(sequences(), {
        method: 'draft',
        proposer: new DraftModelProposer(runner),
        numSpeculativeTokens: 4,
        maxBatch: 4,
      });
      assert.deepEqual(spec.tokens, plain.tokens);
      assert.ok(spec.stats!.drafts > 0, 'drafts were verified');
      assert.ok(spec.stats!.acceptedTokens > 0, 'the early-exit draft agreed some of the time');
      // Every sequence's draft cache went when the sequence ended.
      assert.equal(runner.sequences, 0);
    });

    it('a draft model with the same vocabulary (quant-zoo) gives the greedy output of plain decoding', async function () {
      if (!existsSync(ZOO)) this.skip();
      const { runner, draft } = await draftOf(ZOO);
      assert.equal(draft.config.vocabSize, llm.config.vocabSize);
      const plain = await drive(sequences(40));
      const spec = await drive(sequences(40), {
        method: 'draft',
        proposer: new DraftModelProposer(runner),
        numSpeculativeTokens: 3,
        maxBatch: 4,
      });
      assert.deepEqual(spec.tokens, plain.tokens);
      assert.ok(spec.stats!.drafts > 0);
      assert.equal(runner.sequences, 0);
    });

    it('auto-off: a request whose drafts are mostly rejected stops drafting', async function () {
      if (!existsSync(ZOO)) this.skip();
      const { runner } = await draftOf(ZOO);
      const base = { method: 'draft', proposer: new DraftModelProposer(runner), numSpeculativeTokens: 4, maxBatch: 4 };
      const [one] = sequences(80);
      const always = await drive([one!], base);
      const [again] = sequences(80);
      const paused = await drive([again!], {
        ...base,
        autoOff: { minAcceptance: 0.5, window: 8, coolDownSteps: 1000 },
      });
      assert.deepEqual(paused.tokens, always.tokens, 'the output does not change');
      assert.ok(always.stats!.acceptedTokens < 0.5 * always.stats!.draftTokens, 'the random draft is mostly wrong');
      assert.ok(always.stats!.draftTokens > 40, `without auto-off it drafts all along (${always.stats!.draftTokens})`);
      assert.equal(paused.stats!.pauses, 1, 'paused once, and the cool-down outlasts the request');
      // Drafting stopped once the window of 8 draft tokens was verified (two drafts of 4).
      assert.ok(paused.stats!.draftTokens <= 8, `${paused.stats!.draftTokens} draft tokens after the pause`);
      assert.ok(paused.stats!.plainTokens > 60, 'the rest was plain decoding');
    });

    it('auto-off: while a request is paused its draft model runs no step, and the output is plain decoding’s', async function () {
      if (!existsSync(ZOO)) this.skip();
      const { runner } = await draftOf(ZOO);
      const [one] = sequences(80);
      const plain = await drive([one!]);
      const [again] = sequences(80);
      const before = runner.runs;
      const paused = await drive([again!], {
        method: 'draft',
        proposer: new DraftModelProposer(runner),
        numSpeculativeTokens: 3,
        maxBatch: 4,
        autoOff: { minAcceptance: 0.5, window: 12, coolDownSteps: 1000 },
      });
      const stats = paused.stats!;
      assert.deepEqual(paused.tokens, plain.tokens);
      assert.equal(stats.pauses, 1, 'paused once, for longer than the request');
      // Every draft model run belongs to a proposal made before the pause: k runs each at most (its first step
      // includes the prompt's prefill), none after it.
      assert.ok(stats.proposals > 0 && stats.proposals <= 4, `${stats.proposals} proposals before the pause`);
      assert.ok(runner.runs - before <= 3 * stats.proposals, `${runner.runs - before} draft runs`);
      // The random draft is wrong nearly always: the window of 12 cannot reach 50 % once 7 of its tokens failed, so
      // the pause comes before it is full.
      assert.ok(stats.draftTokens < 12, `${stats.draftTokens} draft tokens before the pause`);
      // One row per step: the verify steps and the plain steps add up to the steps after the first token.
      assert.equal(stats.verifyRows, stats.drafts);
      assert.equal(stats.verifyRows + stats.plainRows, 80 - 1 - stats.acceptedTokens);
      assert.equal(runner.sequences, 0, 'the draft cache went with the request');
    });

    it('auto-off carries over to the next request: a pair whose drafts stopped paying stays off, the output unchanged', async function () {
      if (!existsSync(ZOO)) this.skip();
      const { runner } = await draftOf(ZOO);
      const [a, b, c] = sequences(60);
      const plain = await drive([a!, b!, c!]);
      const turns = await driveInTurn(
        [a!, b!, c!],
        {
          method: 'draft',
          proposer: new DraftModelProposer(runner),
          numSpeculativeTokens: 4,
          maxBatch: 1,
          autoOff: { minAcceptance: 0.5, window: 8, coolDownSteps: 1000, acrossRequests: true },
        },
        () => runner.runs,
      );
      for (const [i, turn] of turns.entries()) assert.deepEqual(turn.tokens, plain.tokens.get(i + 1));
      // The first request probes the random draft and pauses; the cool-down it left outlasts the next two requests,
      // which start paused: no draft, not even the draft model's prefill.
      assert.equal(turns[0]!.stats.pauses, 1);
      assert.ok(turns[0]!.draftRuns > 0 && turns[0]!.stats.draftTokens > 0);
      for (const turn of turns.slice(1)) {
        assert.equal(turn.draftRuns, 0, 'the draft model ran no step');
        assert.equal(turn.stats.draftTokens, turns[0]!.stats.draftTokens, 'no draft token after the first request');
      }
      assert.equal(runner.sequences, 0);
    });
  });
