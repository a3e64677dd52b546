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
import {
  buildLlamaGraph,
  builtDecoderConfig,
  createTokenizer,
  type LlamaArchitecture,
  type LlmTokenizer,
  type LoadedLlm,
} from '@nucleus/sdk/llm';
import { WeightOnlyTransform } from '@nucleus/plugin-quant-int8';
import { loadGguf } from '@nucleus/plugin-format-gguf';
import { DraftModelRunner } from '@nucleus/core/internal/engine/llm/generation/draft-model-runner';
import { loadLlm } from './llm-models.js';
import { randomLlama } from './random-llama.js';
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
// The draft method's, as the plugin sets it: a pause carries over to the next requests.
const DRAFT_AUTO_OFF: SpeculationAutoOff = { ...AUTO_OFF, acrossRequests: true };
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
// over the time after the first token. The runs of a row are requests one after the other to one loop, as a served
// model's worker takes them: what auto-off learnt from one request carries over to the next.
async function decodeRate(
  llm: Pick<LoadedLlm, 'config'>,
  tokenizer: LlmTokenizer,
  session: ort.InferenceSession,
  prompt: string,
  speculation: Speculation | undefined,
): Promise<{ stats: RunStats; spec?: SpeculationStats; output: number[] }> {
  const latencies: number[] = [];
  let seconds = 0;
  let spec: SpeculationStats | undefined;
  let output: number[] = [];
  let tokens: number[] = [];
  let done = false;
  const sink: LoopSink = {
    token: (_id, t) => void tokens.push(t),
    finish: () => void (done = true),
    fail: (_ids, err) => {
      throw err;
    },
  };
  const runner =
    llm.config.graphStyle === 'contrib'
      ? new ContribDecoderSession(session, llm.config)
      : new DecoderSession(session, llm.config);
  const scheduler = new GenerationScheduler({ maxRunning: 1, maxBatchSize: 1, batchWindowMs: 0, strategy: 'fifo' });
  const loop = new GenerationLoop({
    runner,
    scheduler,
    sink,
    maxContext: llm.config.maxContext,
    ...(speculation && { speculation }),
  });
  const promptIds = tokenizer.encode(prompt, { addBos: true });
  for (let run = 0; run < RUNS + 1; run++) {
    tokens = [];
    done = false;
    const before = loop.speculation && { ...loop.speculation };
    loop.add({
      id: run + 1,
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
    output = tokens;
    // The first run warms the session up.
    if (run === 0) continue;
    latencies.push(ms / (tokens.length - 1));
    seconds += ms / 1000;
    spec = loop.speculation && before && difference(loop.speculation, before);
  }
  return { stats: summarise(latencies, seconds, RUNS * (TOKENS - 1)), ...(spec && { spec }), output };
}

// What a loop's speculation counted during one run.
function difference(after: SpeculationStats, before: SpeculationStats): SpeculationStats {
  const out = { ...after };
  for (const key of Object.keys(out) as (keyof SpeculationStats)[]) out[key] = after[key] - before[key];
  return out;
}

// A speculative run's row against plain decoding of the same prompt; its greedy output must be plain decoding's.
function speculativeRow(
  label: string,
  base: { stats: RunStats; output: number[] },
  { stats, spec, output }: { stats: RunStats; spec?: SpeculationStats; output: number[] },
): ResultRow {
  if (output.join() !== base.output.join()) throw new Error(`${label}: greedy output differs from plain decoding`);
  const rate = spec && spec.draftTokens > 0 ? spec.acceptedTokens / spec.draftTokens : 0;
  return {
    label,
    stats,
    ratio: stats.throughput / base.stats.throughput,
    note: `acceptance ${(rate * 100).toFixed(0)}% (${spec?.acceptedTokens ?? 0} of ${spec?.draftTokens ?? 0} draft tokens, ${spec?.drafts ?? 0} drafts${spec?.pauses ? `, ${spec.pauses} auto-off pauses` : ''}, ${spec?.verifyRows ?? 0} verify and ${spec?.plainRows ?? 0} plain steps, drafting ${(spec?.draftMs ?? 0).toFixed(1)} ms, last run); ${((TOKENS - 1) / Math.max(1, TOKENS - 1 - (spec?.acceptedTokens ?? 0))).toFixed(2)} tokens per step`,
  };
}

// A random Llama whose step cost is its weights' (about 190 MB in float32), with stories260K's 512-token vocabulary so
// the prompts are text: the target of the quantized self-draft rows.
const WIDE_ARCH: LlamaArchitecture = {
  vocabSize: 512,
  hiddenSize: 1024,
  intermediateSize: 2752,
  numLayers: 4,
  numHeads: 16,
  numKvHeads: 8,
  headDim: 64,
  rmsNormEps: 1e-5,
  ropeTheta: 10000,
  maxPositions: 1024,
};

// The target against its own int8 self as the draft (what `models[].speculation.draftQuantize: int8` loads: quant-int8's
// `int8` transform over the target's graph), and the ngram method for comparison.
async function quantizedDraftTable(tokenizer: LlmTokenizer, options: ort.InferenceSession.SessionOptions) {
  const graph = buildLlamaGraph(randomLlama(WIDE_ARCH), WIDE_ARCH, {
    ropeLayout: 'interleaved',
    style: 'contrib',
    name: 'wide_llama',
  });
  const config = builtDecoderConfig(WIDE_ARCH, 'contrib', { eosTokenIds: [2] });
  const session = await ort.InferenceSession.create(graph.encode(), options);
  const transform = new WeightOnlyTransform(undefined, 'int8');
  const { model: int8, summary } = await transform.transform(graph, {
    model: 'wide-llama-draft',
    kind: 'llm',
    path: 'wide-llama.onnx',
  });
  const draftSession = await ort.InferenceSession.create(int8.encode(), options);
  const rows: ResultRow[] = [];
  try {
    const llm = { config };
    for (const [name, prompt] of PROMPTS) {
      const base = await decodeRate(llm, tokenizer, session, prompt, undefined);
      rows.push({ label: `${name}: plain decoding`, stats: base.stats });
      const measure = async (label: string, speculation: Speculation): Promise<void> => {
        rows.push(
          speculativeRow(`${name}: ${label}`, base, await decodeRate(llm, tokenizer, session, prompt, speculation)),
        );
      };
      for (const k of [3, 4, 6])
        for (const autoOff of k === 4 ? [undefined, DRAFT_AUTO_OFF] : [undefined])
          await measure(`draft: the model's int8 self, k=${k}${autoOff ? ' + auto-off' : ''}`, {
            method: 'draft',
            proposer: new DraftModelProposer(new DraftModelRunner(draftSession, config)),
            numSpeculativeTokens: k,
            maxBatch: 1,
            ...(autoOff && { autoOff }),
          });
      const ngram = ngramMethod();
      await measure(`ngram k=${ngram.numSpeculativeTokens} (defaults)`, {
        method: 'ngram',
        proposer: createNgramProposer(ngram.options ?? {}),
        numSpeculativeTokens: ngram.numSpeculativeTokens,
        maxBatch: 1,
      });
    }
  } finally {
    await session.release();
    await draftSession.release();
  }
  return {
    table: {
      title: `random Llama (dim 1024, 4 layers, vocab 512), contrib graph, 1 stream, ${TOKENS} greedy tokens`,
      unit: 'tokens',
      rows,
    } satisfies ResultTable,
    note: `Random Llama: float32 target, draft its own graph through quant-int8's int8 transform (${summary}). Its weights are random, so its greedy output soon repeats a few tokens whatever the prompt: these rows are the repetitive-text case, where ngram drafts well too. The int8 draft agrees because int8 weights barely move the logits, not because the text repeats.`,
  };
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
          const run = await decodeRate(llm, tokenizer, session, prompt, speculation);
          rows.push(speculativeRow(`${name}: ${label}`, base, run));
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
          for (const autoOff of [undefined, DRAFT_AUTO_OFF]) {
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
  if (process.env.BENCH_SPEC_WIDE !== '0') {
    const stories = await loadLlm(join(STORIES, 'stories260K.gguf'), { graphStyle: 'contrib' });
    const wide = await quantizedDraftTable(createTokenizer(stories.tokenizer), {
      intraOpNumThreads: 1,
      extra: { session: { intra_op: { allow_spinning: '0' } } },
    });
    tables.push(wide.table);
    notes.push(wide.note);
  }
  notes.push(
    'Ratio: decode tokens/s with speculation over plain decoding, same prompt, same session (1 intra-op thread); p50/p99 are ms per token of each run.',
    `${RUNS} measured runs after one warm-up run, as requests one after the other to one generation loop per row (a served model's worker); acceptance is accepted over drafted tokens, counted over the last run. Greedy output is identical with and without speculation (the bench checks every row's tokens against plain decoding).`,
    `Auto-off: the plugin's defaults (pause below ${AUTO_OFF.minAcceptance * 100}% acceptance over the latest ${AUTO_OFF.window} draft tokens, or when the measured step costs say the drafts cannot pay, for ${AUTO_OFF.coolDownSteps} steps, doubled at each pause in a row). The pause comes as soon as the window can no longer reach the threshold; a draft model that costs more than it can save pauses for 64 cool-downs at once. With a draft model a new request starts from the cool-down and pauses in a row the latest paused request left (the server-level prior), so after the warm-up run a pair that does not pay stays off; ngram requests each judge afresh. Draft models run in the same thread with the same runners (1 intra-op thread each).`,
  );
  return record('spec', machineInfo(), tables, notes);
}
