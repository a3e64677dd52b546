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
import { parseQuantizeSetting, type ModelTransform, type QuantizeSetting, type SpeculationAutoOff } from '@nucleus/sdk';
import {
  buildLlamaGraph,
  builtDecoderConfig,
  createTokenizer,
  earlyExit,
  type LlamaArchitecture,
  type LlamaWeights,
  type LlmTokenizer,
  type LoadedLlm,
} from '@nucleus/sdk/llm';
import { DEFAULT_INT8_OPTIONS, DynamicInt8Transform, WeightOnlyTransform } from '@nucleus/plugin-quant-int8';
import { loadGguf } from '@nucleus/plugin-format-gguf';
import { DraftModelRunner } from '@nucleus/core/internal/engine/llm/generation/draft-model-runner';
import { loadLlm } from './llm-models.js';
import { randomLlama } from './random-llama.js';
import { ContribDecoderSession } from '@nucleus/core/internal/engine/llm/generation/contrib-session';
import { DecoderSession } from '@nucleus/core/internal/engine/llm/generation/decoder-session';
import { GenerationLoop, type LoopSink } from '@nucleus/core/internal/engine/llm/generation/generation-loop';
import type { Speculation, SpeculationStats } from '@nucleus/core/internal/engine/llm/generation/speculative-step';
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
// Auto-off rows of drafts that do not pay run plain decoding at about 0.5 ms a token: more pairs pin their ratio down.
const FLOOR_RUNS = Number(process.env.BENCH_SPEC_FLOOR_RUNS ?? 3 * RUNS);
// The random Llama's runs take seconds each: fewer pairs, which the pairing makes enough.
const WIDE_RUNS = Number(process.env.BENCH_SPEC_WIDE_RUNS ?? Math.min(RUNS, 6));

const PROMPTS: [string, string][] = [
  [
    'repetitive prompt',
    'Lily and Ben went to the park. Lily saw a big red ball. Ben saw a big red ball too. Lily and Ben played with the big red ball. Lily and Ben',
  ],
  ['non-repetitive prompt', 'Once upon a time'],
];

// One request's decode time and tokens: the prompt's prefill, then TOKENS greedy tokens, timed after the first.
interface Run {
  ms: number;
  tokens: number[];
}

/**
 * A generation loop in this thread over one session, taking greedy requests one after the other as a served model's
 * worker does: what auto-off learnt from one request carries over to the next.
 */
class Stream {
  readonly loop: GenerationLoop;
  readonly #promptIds: number[];
  readonly #tokenizer: LlmTokenizer;
  readonly #eos: number[];
  #tokens: number[] = [];
  #done = false;
  #id = 0;

  constructor(
    llm: Pick<LoadedLlm, 'config'>,
    tokenizer: LlmTokenizer,
    session: ort.InferenceSession,
    prompt: string,
    speculation?: Speculation,
  ) {
    const sink: LoopSink = {
      token: (_id, t) => void this.#tokens.push(t),
      finish: () => void (this.#done = true),
      fail: (_ids, err) => {
        throw err;
      },
    };
    const runner =
      llm.config.graphStyle === 'contrib'
        ? new ContribDecoderSession(session, llm.config)
        : new DecoderSession(session, llm.config);
    const scheduler = new GenerationScheduler({ maxRunning: 1, maxBatchSize: 1, batchWindowMs: 0, strategy: 'fifo' });
    this.loop = new GenerationLoop({
      runner,
      scheduler,
      sink,
      maxContext: llm.config.maxContext,
      ...(speculation && { speculation }),
    });
    this.#tokenizer = tokenizer;
    this.#promptIds = tokenizer.encode(prompt, { addBos: true });
    this.#eos = llm.config.eosTokenIds;
  }

  async request(): Promise<Run> {
    this.#tokens = [];
    this.#done = false;
    this.loop.add({
      id: ++this.#id,
      promptIds: this.#promptIds,
      params: { ...DEFAULT_SAMPLING, temperature: 0 },
      seed: 1,
      maxTokens: TOKENS,
      stop: [],
      eosTokenIds: this.#eos,
      ignoreEos: true,
      priority: 'normal',
      decoder: this.#tokenizer.createStreamDecoder({ prefix: this.#promptIds }),
    });
    await this.loop.iterate();
    const started = performance.now();
    while (!this.#done) await this.loop.iterate();
    return { ms: performance.now() - started, tokens: this.#tokens };
  }
}

/** A prompt's plain decoding stream, whose runs every speculative row of the prompt is paired with. */
class Baseline {
  readonly stream: Stream;
  readonly runs: Run[] = [];
  output: number[] = [];

  constructor(stream: Stream) {
    this.stream = stream;
  }

  async warm(): Promise<void> {
    this.output = (await this.stream.request()).tokens;
  }

  async run(): Promise<Run> {
    const run = await this.stream.request();
    if (run.tokens.join() !== this.output.join()) throw new Error('plain decoding changed its greedy output');
    this.runs.push(run);
    return run;
  }

  /** The prompt's plain decoding row, over every run paired with a speculative row. */
  row(name: string): ResultRow {
    return { label: `${name}: plain decoding`, stats: statsOf(this.runs) };
  }
}

function statsOf(runs: readonly Run[]): RunStats {
  const latencies = runs.map((r) => r.ms / (r.tokens.length - 1));
  const seconds = runs.reduce((s, r) => s + r.ms, 0) / 1000;
  return summarise(
    latencies,
    seconds,
    runs.reduce((n, r) => n + r.tokens.length - 1, 0),
  );
}

/**
 * A speculative row, measured against plain decoding of the same prompt run by run: after a warm-up request each,
 * the two streams take turns (plain first on even runs, speculative first on odd ones, so a drift in the machine's
 * load falls on both alike), and the row's ratio is the median of the per-run ratios, with their spread. On a shared
 * machine tokens/s moves between rows by more than a ±5% floor; a pair of runs next to each other moves much less.
 * Every run's greedy output must be plain decoding's.
 */
async function pairedRow(label: string, base: Baseline, spec: Stream, runs = RUNS): Promise<ResultRow> {
  await spec.request();
  const before = { ...spec.loop.speculation! };
  const own: Run[] = [];
  const ratios: number[] = [];
  for (let i = 0; i < runs; i++) {
    let plain: Run;
    let run: Run;
    if (i % 2 === 0) {
      plain = await base.run();
      run = await spec.request();
    } else {
      run = await spec.request();
      plain = await base.run();
    }
    if (run.tokens.join() !== base.output.join())
      throw new Error(`${label}: greedy output differs from plain decoding`);
    own.push(run);
    ratios.push(plain.ms / run.ms);
  }
  const s = difference(spec.loop.speculation!, before);
  const rate = s.draftTokens > 0 ? s.acceptedTokens / s.draftTokens : 0;
  const decoded = runs * (TOKENS - 1);
  const sorted = [...ratios].sort((a, b) => a - b);
  return {
    label,
    stats: statsOf(own),
    ratio: median(ratios),
    note:
      `runs ×${sorted[0]!.toFixed(2)}–×${sorted.at(-1)!.toFixed(2)} (${runs} pairs); ` +
      `acceptance ${(rate * 100).toFixed(0)}% (${s.acceptedTokens} of ${s.draftTokens} draft tokens, ${s.drafts} drafts` +
      `${s.pauses ? `, ${s.pauses} auto-off pauses` : ''}, ${s.verifyRows} verify and ${s.plainRows} plain steps, ` +
      `drafting ${s.draftMs.toFixed(1)} ms, over the ${runs} runs); ` +
      `${(decoded / Math.max(1, decoded - s.acceptedTokens)).toFixed(2)} tokens per step`,
  };
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

// What a loop's speculation counted between two readings.
function difference(after: SpeculationStats, before: SpeculationStats): SpeculationStats {
  const out = { ...after };
  for (const key of Object.keys(out) as (keyof SpeculationStats)[]) out[key] = after[key] - before[key];
  return out;
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

/** A self-draft of the random Llama as `models[].speculation` builds it: its first `layers`, then `draftQuantize`. */
interface SelfDraft {
  /** `draftQuantize`: a transform of plugin quant-int8 with its per-model settings; float32 when absent. */
  quantize?: QuantizeSetting;
  /** `draftLayers`: the early exit, all layers when absent. */
  layers?: number;
  k: number;
  autoOff?: boolean;
}

// `int8` (MatMulNBits blocks, int8 activations per block of 32) is the draft that agrees best; `dynamic`
// (DynamicQuantizeLinear + MatMulInteger, one activation scale per run) runs int8 weights through ORT's older int8 GEMM
// kernels, which on a CPU without VNNI cost about 60% of MatMulNBits' 8-bit path. Its per-tensor activation scale moves
// the logits more; the head (the graph's last MatMul, the only one whose error lands on the logits directly) stays
// float32, at the cost of a 512 × 1024 float MatMul.
const DYNAMIC_HEAD_FLOAT: QuantizeSetting = { method: 'dynamic', exclude: [`MatMul_${4 * WIDE_ARCH.numLayers}`] };
const SELF_DRAFTS: SelfDraft[] = [
  { quantize: 'int8', k: 4 },
  { quantize: 'int8', k: 4, autoOff: true },
  { quantize: DYNAMIC_HEAD_FLOAT, k: 4 },
];

// A random Llama built like a model trained for early exit (LayerSkip): its last layers write into the residual
// stream at 2 % of the scale of its first two, so those two and the head already predict most of its tokens. The
// draft is that early exit, at about a quarter of a step's cost.
const EXIT_ARCH: LlamaArchitecture = { ...WIDE_ARCH, numLayers: 8 };
const QUIET = { from: 2, scale: Number(process.env.BENCH_SPEC_QUIET_SCALE ?? 0.02) };
const EXIT_DRAFTS: SelfDraft[] = [
  { layers: 2, k: 4 },
  { layers: 2, k: 4, autoOff: true },
];

function describeArch(a: LlamaArchitecture): string {
  return `dim ${a.hiddenSize}, ${a.numLayers} layers, vocab ${a.vocabSize}`;
}

// The random Llamas the self-draft tables measure (BENCH_SPEC_QUANTIZED=0 leaves the quantized drafts' one out,
// BENCH_SPEC_EXIT=0 the early-exit one).
function selfDraftTargets(): SelfDraftTarget[] {
  const all: SelfDraftTarget[] = [
    {
      arch: WIDE_ARCH,
      weights: randomLlama(WIDE_ARCH),
      drafts: SELF_DRAFTS,
      title: `random Llama (${describeArch(WIDE_ARCH)})`,
      about:
        'Random Llama: float32 target. Its weights are random, so its greedy output soon repeats a few tokens whatever the prompt; the quantized drafts agree because their weights barely move the logits, not because the text repeats.',
    },
    {
      arch: EXIT_ARCH,
      weights: randomLlama(EXIT_ARCH, QUIET),
      drafts: EXIT_DRAFTS,
      title: `random Llama (${describeArch(EXIT_ARCH)}) built for early exit`,
      about: `Early-exit Llama: float32 target, random weights of the same seed, its layers ${QUIET.from + 1}–${EXIT_ARCH.numLayers} writing into the residual stream at ×${QUIET.scale} (attention output and down projections scaled), a stand-in for a model trained for early exit (LayerSkip), whose first layers already predict most tokens; the draft is its first ${QUIET.from} layers and head, as \`draftLayers\` builds it, with no training and no second model.`,
    },
  ];
  return all.filter((_, i) => process.env[i === 0 ? 'BENCH_SPEC_QUANTIZED' : 'BENCH_SPEC_EXIT'] !== '0');
}

// The quant-int8 transforms a self-draft can name, as the plugin contributes them.
const TRANSFORMS: Record<string, ModelTransform> = {
  int8: new WeightOnlyTransform(DEFAULT_INT8_OPTIONS, 'int8'),
  int4: new WeightOnlyTransform(DEFAULT_INT8_OPTIONS, 'int4'),
  dynamic: new DynamicInt8Transform(),
};

// The draft `models[].speculation` loads for these settings: the Llama graph builder over the first layers (what the
// format plugins do for `draftLayers`), then the quant-int8 transform with its per-model settings (what
// `applyModelTransform` does for `draftQuantize`).
async function selfDraft(
  target: SelfDraftTarget,
  draft: SelfDraft,
  options: ort.InferenceSession.SessionOptions,
): Promise<{ runner: DraftModelRunner; session: ort.InferenceSession; summary: string }> {
  const { weights } = target;
  const arch = earlyExit(target.arch, draft.layers);
  const graph = buildLlamaGraph({ ...weights, layers: weights.layers.slice(0, arch.numLayers) }, arch, {
    ropeLayout: 'interleaved',
    style: 'contrib',
    name: 'wide_llama_draft',
  });
  const config = builtDecoderConfig(arch, 'contrib', { eosTokenIds: [2] });
  if (draft.quantize === undefined) {
    const session = await ort.InferenceSession.create(graph.encode(), options);
    return { runner: new DraftModelRunner(session, config), session, summary: `${arch.numLayers} layers, float32` };
  }
  const { method, options: perModel } = parseQuantizeSetting(draft.quantize);
  const transform = TRANSFORMS[method];
  if (!transform) throw new Error(`no self-draft transform ${method} in this bench`);
  const { model, summary } = await transform.transform(graph, {
    model: 'wide-llama-draft',
    kind: 'llm',
    path: 'wide-llama.onnx',
    ...(perModel && { options: perModel }),
  });
  const session = await ort.InferenceSession.create(model.encode(), options);
  return { runner: new DraftModelRunner(session, config), session, summary };
}

/** A random Llama and the self-drafts of it a table measures. */
interface SelfDraftTarget {
  arch: LlamaArchitecture;
  weights: LlamaWeights;
  drafts: SelfDraft[];
  title: string;
  /** What the table's note says of the target, before the drafts' summaries. */
  about: string;
}

// The target against its own quantized and early-exit selves as drafts, and the ngram method for comparison.
async function selfDraftTable(
  target: SelfDraftTarget,
  tokenizer: LlmTokenizer,
  options: ort.InferenceSession.SessionOptions,
) {
  const { arch, weights } = target;
  const graph = buildLlamaGraph(weights, arch, {
    ropeLayout: 'interleaved',
    style: 'contrib',
    name: 'wide_llama',
  });
  const config = builtDecoderConfig(arch, 'contrib', { eosTokenIds: [2] });
  const session = await ort.InferenceSession.create(graph.encode(), options);
  const drafts = new Map<string, Awaited<ReturnType<typeof selfDraft>>>();
  const summaries: string[] = [];
  for (const d of target.drafts) {
    const key = JSON.stringify([d.quantize, d.layers]);
    if (drafts.has(key)) continue;
    const built = await selfDraft(target, d, options);
    drafts.set(key, built);
    summaries.push(`${describeDraft(d)}: ${built.summary}`);
  }
  const rows: ResultRow[] = [];
  try {
    const llm = { config };
    for (const [name, prompt] of PROMPTS) {
      const base = new Baseline(new Stream(llm, tokenizer, session, prompt));
      await base.warm();
      const at = rows.length;
      const measure = async (label: string, speculation: Speculation): Promise<void> => {
        const spec = new Stream(llm, tokenizer, session, prompt, speculation);
        rows.push(await pairedRow(`${name}: ${label}`, base, spec, WIDE_RUNS));
      };
      for (const d of target.drafts) {
        const { runner } = drafts.get(JSON.stringify([d.quantize, d.layers]))!;
        await measure(`draft: ${describeDraft(d)}, k=${d.k}${d.autoOff ? ' + auto-off' : ''}`, {
          method: 'draft',
          proposer: new DraftModelProposer(runner),
          numSpeculativeTokens: d.k,
          maxBatch: 1,
          ...(d.autoOff && { autoOff: DRAFT_AUTO_OFF }),
        });
      }
      const ngram = ngramMethod();
      await measure(`ngram k=${ngram.numSpeculativeTokens} (defaults)`, {
        method: 'ngram',
        proposer: createNgramProposer(ngram.options ?? {}),
        numSpeculativeTokens: ngram.numSpeculativeTokens,
        maxBatch: 1,
      });
      rows.splice(at, 0, base.row(name));
    }
  } finally {
    await session.release();
    for (const d of drafts.values()) await d.session.release();
  }
  return {
    table: {
      title: `${target.title}, contrib graph, 1 stream, ${TOKENS} greedy tokens`,
      unit: 'tokens',
      rows,
    } satisfies ResultTable,
    note: `${target.about} Each draft is its own graph as \`models[].speculation\` builds it (\`draftLayers\`: the first layers, then the norm and head; \`draftQuantize\`: quant-int8's transform): ${summaries.join('; ')}.`,
  };
}

// A self-draft's settings as a config names them.
function describeDraft(d: SelfDraft): string {
  const layers = d.layers !== undefined ? `draftLayers: ${d.layers}` : undefined;
  if (d.quantize === undefined) return layers ?? 'the model itself';
  const q = typeof d.quantize === 'string' ? d.quantize : JSON.stringify(d.quantize).replaceAll('"', '');
  return `${layers ? `${layers}, ` : ''}draftQuantize: ${q}`;
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
  // BENCH_SPEC_STORIES=0 leaves the stories260K tables out (BENCH_SPEC_WIDE=0 the random Llama's).
  const styles = process.env.BENCH_SPEC_STORIES === '0' ? [] : (['generic', 'contrib'] as const);
  for (const graphStyle of styles) {
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
        const base = new Baseline(new Stream(llm, tokenizer, session, prompt));
        await base.warm();
        const at = rows.length;
        const measure = async (label: string, speculation: Speculation, runs = RUNS): Promise<void> => {
          const spec = new Stream(llm, tokenizer, session, prompt, speculation);
          rows.push(await pairedRow(`${name}: ${label}`, base, spec, runs));
        };
        for (const s of settings) {
          await measure(s.label, {
            method: 'ngram',
            proposer: createNgramProposer(s.method.options ?? {}),
            numSpeculativeTokens: s.k,
            maxBatch: 1,
          });
        }
        await measure(
          `${settings[0]!.label} + auto-off`,
          {
            method: 'ngram',
            proposer: createNgramProposer(settings[0]!.method.options ?? {}),
            numSpeculativeTokens: settings[0]!.k,
            maxBatch: 1,
            autoOff: AUTO_OFF,
          },
          FLOOR_RUNS,
        );
        for (const [i, d] of drafts.entries()) {
          for (const autoOff of [undefined, DRAFT_AUTO_OFF]) {
            await measure(
              `${d.label}, k=${d.k}${autoOff ? ' + auto-off' : ''}`,
              {
                method: 'draft',
                proposer: new DraftModelProposer(draftRunners[i]!),
                numSpeculativeTokens: d.k,
                maxBatch: 1,
                ...(autoOff && { autoOff }),
              },
              autoOff ? FLOOR_RUNS : RUNS,
            );
          }
        }
        rows.splice(at, 0, base.row(name));
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
    const tokenizer = createTokenizer(stories.tokenizer);
    const options = { intraOpNumThreads: 1, extra: { session: { intra_op: { allow_spinning: '0' } } } };
    for (const target of selfDraftTargets()) {
      const wide = await selfDraftTable(target, tokenizer, options);
      tables.push(wide.table);
      notes.push(wide.note);
    }
  }
  notes.push(
    "Ratio: the median over the row's runs of plain decoding's time over the speculative run's, each speculative run paired with a plain run of the same prompt on the same session (1 intra-op thread) next to it in time: plain first on even runs, speculative first on odd ones. \"runs ×a–×b\" is the spread of those per-run ratios. tokens/s and p50/p99 (ms per token of each run) are the row's own runs; a plain decoding row pools the plain runs of its prompt's rows.",
    `${RUNS} pairs per row (${FLOOR_RUNS} for the auto-off rows of stories260K, whose ratio is the ±5% floor; ${WIDE_RUNS} for the random Llama, whose runs take seconds) after one warm-up request on each side, as requests one after the other to one generation loop per side (a served model's worker): what auto-off learnt carries over from one request to the next. Acceptance, drafts, pauses and drafting time are counted over all of a row's measured runs, so an auto-off row shows what its probes cost. Greedy output is identical with and without speculation (the bench checks every run's tokens against plain decoding).`,
    `Auto-off: the plugin's defaults (pause below ${AUTO_OFF.minAcceptance * 100}% acceptance over the latest ${AUTO_OFF.window} draft tokens, or when the measured step costs say the drafts cannot pay, for ${AUTO_OFF.coolDownSteps} steps, doubled at each pause in a row). The pause comes as soon as the window can no longer reach the threshold; a draft model that costs more than it can save pauses for 64 cool-downs at once. With a draft model a new request starts from the cool-down and pauses in a row the latest paused request left (the server-level prior), so after the warm-up run a pair that does not pay stays off; ngram requests each judge afresh. Draft models run in the same thread with the same runners (1 intra-op thread each).`,
  );
  return record('spec', machineInfo(), tables, notes);
}
