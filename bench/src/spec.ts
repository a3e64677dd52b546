import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as ort from 'onnxruntime-node';
import {
  createNgramProposer,
  DEFAULT_SPEC_DECODE_SETTINGS,
  DraftModelProposer,
  ngramMethod,
} from '@nucleus/plugin-spec-decode';
import type { SpeculationAutoOff } from '@nucleus/sdk';
import { createTokenizer, type LlmTokenizer, type LoadedLlm } from '@nucleus/sdk/llm';
import { loadGguf } from '@nucleus/plugin-format-gguf';
import { DraftModelRunner } from '@nucleus/core/internal/engine/llm/generation/draft-model-runner';
import { loadLlm } from './llm-models.js';
import { ContribDecoderSession } from '@nucleus/core/internal/engine/llm/generation/contrib-session';
import { DecoderSession } from '@nucleus/core/internal/engine/llm/generation/decoder-session';
import {
  GenerationLoop,
  type LoopSink,
  type Speculation,
  type SpeculationStats,
} from '@nucleus/core/internal/engine/llm/generation/generation-loop';
import { DEFAULT_SAMPLING } from '@nucleus/core/internal/engine/llm/generation/sampler';
import { GenerationScheduler } from '@nucleus/core/internal/engine/llm/generation/scheduler';
import { machineInfo } from './machine.js';
import { record, type ResultRow, type ResultTable } from './report.js';
import { summarise, type RunStats } from './stats.js';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
const STORIES = join(REPO, '..', 'shared', 'models', 'stories260K');
const ZOO = join(REPO, '..', 'shared', 'models', 'llm-oracle', 'quant-zoo-Q8_0.gguf');
const AUTO_OFF: SpeculationAutoOff = {
  minAcceptance: DEFAULT_SPEC_DECODE_SETTINGS.autoOffMinAcceptance,
  window: DEFAULT_SPEC_DECODE_SETTINGS.autoOffWindow,
  coolDownSteps: DEFAULT_SPEC_DECODE_SETTINGS.autoOffCoolDownSteps,
};
const TOKENS = Number(process.env.BENCH_SPEC_TOKENS ?? 200);
const RUNS = Number(process.env.BENCH_SPEC_RUNS ?? 10);

const PROMPTS: [string, string][] = [
  [
    'repetitive prompt',
    'Lily and Ben went to the park. Lily saw a big red ball. Ben saw a big red ball too. Lily and Ben played with the big red ball. Lily and Ben',
  ],
  ['non-repetitive prompt', 'Once upon a time'],
];

// One stream in the generation loop, in this thread: the prompt's prefill, then TOKENS greedy tokens; decode tokens/s
// over the time after the first token.
async function decodeRate(
  llm: LoadedLlm,
  tokenizer: LlmTokenizer,
  session: ort.InferenceSession,
  prompt: string,
  speculation: Speculation | undefined,
): Promise<{ stats: RunStats; spec?: SpeculationStats; output: number[] }> {
  const latencies: number[] = [];
  let seconds = 0;
  let spec: SpeculationStats | undefined;
  let output: number[] = [];
  for (let run = 0; run < RUNS + 1; run++) {
    const tokens: number[] = [];
    const runner =
      llm.config.graphStyle === 'contrib'
        ? new ContribDecoderSession(session, llm.config)
        : new DecoderSession(session, llm.config);
    let done = false;
    let produced = 0;
    const sink: LoopSink = {
      token: (_id, t) => {
        produced++;
        tokens.push(t);
      },
      finish: () => void (done = true),
      fail: (_ids, err) => {
        throw err;
      },
    };
    const scheduler = new GenerationScheduler({ maxRunning: 1, maxBatchSize: 1, batchWindowMs: 0, strategy: 'fifo' });
    const loop = new GenerationLoop({
      runner,
      scheduler,
      sink,
      maxContext: llm.config.maxContext,
      ...(speculation && { speculation }),
    });
    const promptIds = tokenizer.encode(prompt, { addBos: true });
    loop.add({
      id: 1,
      promptIds,
      params: { ...DEFAULT_SAMPLING, temperature: 0 },
      seed: 1,
      maxTokens: TOKENS,
      stop: [],
      eosTokenIds: llm.config.eosTokenIds,
      ignoreEos: true,
      priority: 'normal',
      decoder: tokenizer.createStreamDecoder({ prefix: promptIds }),
    });
    await loop.iterate();
    const started = performance.now();
    while (!done) await loop.iterate();
    const ms = performance.now() - started;
    // Drafts keep a cache per sequence: each run starts afresh.
    speculation?.proposer.release?.(1);
    output = tokens;
    // The first run warms the session up.
    if (run === 0) continue;
    latencies.push(ms / (produced - 1));
    seconds += ms / 1000;
    spec = loop.speculation && { ...loop.speculation };
  }
  return { stats: summarise(latencies, seconds, RUNS * (TOKENS - 1)), ...(spec && { spec }), output };
}

/** Speculative decoding (spec-decode, ngram) against plain decoding: one stream's decode tokens/s on stories260K. */
export async function specSuite(): Promise<string> {
  const tables: ResultTable[] = [];
  const notes: string[] = [];
  if (!existsSync(join(STORIES, 'stories260K.gguf'))) {
    notes.push('stories260K skipped: ../shared/models/stories260K is absent.');
    return record('spec', machineInfo(), tables, notes);
  }
  // The plugin's defaults, then a looser match and a longer draft.
  const defaults = ngramMethod();
  const settings = [
    {
      method: defaults,
      k: defaults.numSpeculativeTokens,
      label: `ngram k=${defaults.numSpeculativeTokens}, n ${defaults.options!.promptLookupMin}–${defaults.options!.promptLookupMax} (defaults)`,
    },
    { method: ngramMethod({ promptLookupMin: 1, promptLookupMax: 3 }), k: 4, label: 'ngram k=4, n 1–3' },
    { method: ngramMethod({ promptLookupMin: 1, promptLookupMax: 3 }), k: 8, label: 'ngram k=8, n 1–3' },
  ];
  for (const graphStyle of ['generic', 'contrib'] as const) {
    const llm = await loadLlm(join(STORIES, 'stories260K.gguf'), { graphStyle });
    const tokenizer = createTokenizer(llm.tokenizer);
    const options: ort.InferenceSession.SessionOptions = {
      intraOpNumThreads: 1,
      extra: { session: { intra_op: { allow_spinning: '0' } } },
    };
    const session = await ort.InferenceSession.create(llm.onnxPath, options);
    // Draft models: the model's own first layers (self-speculation, early exit) and a model with the same vocabulary.
    const cacheDir = join(REPO, '.cache', 'models');
    const drafts: { label: string; path: string; layers?: number; k: number }[] = [
      { label: 'draft: first 1 of 5 layers', path: join(STORIES, 'stories260K.gguf'), layers: 1, k: 3 },
      { label: 'draft: first 3 of 5 layers', path: join(STORIES, 'stories260K.gguf'), layers: 3, k: 4 },
      ...(existsSync(ZOO)
        ? [{ label: 'draft: quant-zoo Q8_0 (random weights, same vocabulary)', path: ZOO, k: 2 }]
        : []),
    ];
    const draftSessions: ort.InferenceSession[] = [];
    const draftRunners: DraftModelRunner[] = [];
    for (const d of drafts) {
      const loaded = await loadGguf(d.path, {
        cacheDir,
        graphStyle,
        ...(d.layers !== undefined && { layers: d.layers }),
      });
      const s = await ort.InferenceSession.create(loaded.onnxPath, options);
      draftSessions.push(s);
      draftRunners.push(new DraftModelRunner(s, loaded.config));
    }
    try {
      const rows: ResultRow[] = [];
      for (const [name, prompt] of PROMPTS) {
        const base = await decodeRate(llm, tokenizer, session, prompt, undefined);
        rows.push({ label: `${name}: plain decoding`, stats: base.stats });
        const measure = async (label: string, speculation: Speculation): Promise<void> => {
          const { stats, spec, output } = await decodeRate(llm, tokenizer, session, prompt, speculation);
          if (output.join() !== base.output.join())
            throw new Error(`${label}: greedy output differs from plain decoding`);
          const rate = spec && spec.draftTokens > 0 ? spec.acceptedTokens / spec.draftTokens : 0;
          rows.push({
            label: `${name}: ${label}`,
            stats,
            ratio: stats.throughput / base.stats.throughput,
            note: `acceptance ${(rate * 100).toFixed(0)}% (${spec?.acceptedTokens ?? 0} of ${spec?.draftTokens ?? 0} draft tokens, ${spec?.drafts ?? 0} drafts${spec?.pauses ? `, ${spec.pauses} auto-off pauses` : ''}, ${spec?.verifyRows ?? 0} verify and ${spec?.plainRows ?? 0} plain steps, drafting ${(spec?.draftMs ?? 0).toFixed(1)} ms, last run); ${((TOKENS - 1) / Math.max(1, TOKENS - 1 - (spec?.acceptedTokens ?? 0))).toFixed(2)} tokens per step`,
          });
        };
        for (const s of settings) {
          await measure(s.label, {
            method: 'ngram',
            proposer: createNgramProposer(s.method.options ?? {}),
            numSpeculativeTokens: s.k,
            maxBatch: 1,
          });
        }
        await measure(`${settings[0]!.label} + auto-off`, {
          method: 'ngram',
          proposer: createNgramProposer(settings[0]!.method.options ?? {}),
          numSpeculativeTokens: settings[0]!.k,
          maxBatch: 1,
          autoOff: AUTO_OFF,
        });
        for (const [i, d] of drafts.entries()) {
          for (const autoOff of [undefined, AUTO_OFF]) {
            await measure(`${d.label}, k=${d.k}${autoOff ? ' + auto-off' : ''}`, {
              method: 'draft',
              proposer: new DraftModelProposer(draftRunners[i]!),
              numSpeculativeTokens: d.k,
              maxBatch: 1,
              ...(autoOff && { autoOff }),
            });
          }
        }
      }
      tables.push({
        title: `stories260K, ${graphStyle} graph, 1 stream, ${TOKENS} greedy tokens`,
        unit: 'tokens',
        rows,
      });
    } finally {
      await session.release();
      for (const s of draftSessions) await s.release();
    }
  }
  notes.push(
    'Ratio: decode tokens/s with speculation over plain decoding, same prompt, same session (1 intra-op thread); p50/p99 are ms per token of each run.',
    `${RUNS} measured runs after one warm-up run; acceptance is accepted over drafted tokens. Greedy output is identical with and without speculation (the bench checks every row's tokens against plain decoding).`,
    `Auto-off: the plugin's defaults (pause below ${AUTO_OFF.minAcceptance * 100}% acceptance over the latest ${AUTO_OFF.window} draft tokens, or when the measured step costs say the drafts cannot pay, for ${AUTO_OFF.coolDownSteps} steps, doubled at each pause in a row). The pause comes as soon as the window can no longer reach the threshold; a draft model that costs more than it can save pauses for 64 cool-downs at once. Draft models run in the same thread with the same runners (1 intra-op thread each).`,
  );
  return record('spec', machineInfo(), tables, notes);
}
