import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as ort from 'onnxruntime-node';
import { loadModel, OnnxModel } from '@nucleus/sdk/onnx';
import { SeededRandom } from '@nucleus/sdk';
import {
  buildLlamaGraph,
  builtDecoderConfig,
  type DecoderConfig,
  type LlamaArchitecture,
  type LlamaWeights,
} from '@nucleus/sdk/llm';
import { loadLlm } from './llm-models.js';
import { ContribDecoderSession } from '@nucleus/core/internal/engine/llm/generation/contrib-session';
import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { ensureBuiltinModels } from '@nucleus/plugin-builtin-models';
import {
  parseQuantizeOptions,
  quantizeDynamic,
  quantizeFp16,
  quantizeStatic,
  quantizeWeights,
  type StaticOptions,
  type WeightOnlyOptions,
} from '@nucleus/plugin-quant-int8';
import { compareLlms, compareTensorModels } from '@nucleus/core/internal/cli/quantize-evaluation';
import { createTokenizer } from '@nucleus/sdk/llm';
import { machineInfo } from './machine.js';
import { record, type ResultRow, type ResultTable } from './report.js';
import { summarise, type RunStats } from './stats.js';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
const STORIES = join(REPO, '..', 'shared', 'models', 'stories260K');
const STEPS = Number(process.env.BENCH_QUANT_STEPS ?? 64);
const WARMUP = 8;

// A random Llama big enough that its weights, not per-op overhead, set the decode speed (about 25 MB in float32).
const MID_ARCH: LlamaArchitecture = {
  vocabSize: 4096,
  hiddenSize: 512,
  intermediateSize: 1376,
  numLayers: 4,
  numHeads: 8,
  numKvHeads: 4,
  headDim: 64,
  rmsNormEps: 1e-5,
  ropeTheta: 10000,
  maxPositions: 512,
};

function randomLlama(a: LlamaArchitecture): LlamaWeights {
  const rng = new SeededRandom(17);
  const m = (rows: number, cols: number): Float32Array => rng.normals(rows * cols, 1 / Math.sqrt(cols));
  const ones = (n: number): Float32Array => new Float32Array(n).fill(1);
  const q = a.numHeads * a.headDim;
  const kv = a.numKvHeads * a.headDim;
  return {
    tokenEmbedding: m(a.vocabSize, a.hiddenSize),
    finalNorm: ones(a.hiddenSize),
    layers: Array.from({ length: a.numLayers }, () => ({
      attnNorm: ones(a.hiddenSize),
      q: m(q, a.hiddenSize),
      k: m(kv, a.hiddenSize),
      v: m(kv, a.hiddenSize),
      o: m(a.hiddenSize, q),
      ffnNorm: ones(a.hiddenSize),
      gate: m(a.intermediateSize, a.hiddenSize),
      up: m(a.intermediateSize, a.hiddenSize),
      down: m(a.hiddenSize, a.intermediateSize),
    })),
  };
}

function prompt(seed: number, n: number, vocab: number): number[] {
  let x = (seed * 2654435761 + 12345) >>> 0;
  return Array.from({ length: n }, () => {
    x = (x * 1664525 + 1013904223) >>> 0;
    return 3 + (x % (vocab - 3));
  });
}

// Decode steps on one contrib session, in this thread: each stream prefills 16 tokens, then STEPS measured steps.
async function decodeRate(bytes: Uint8Array, config: DecoderConfig, streams: number): Promise<RunStats> {
  const session = await ort.InferenceSession.create(bytes, {
    intraOpNumThreads: 1,
    extra: { session: { intra_op: { allow_spinning: '0' } } },
  });
  try {
    const runner = new ContribDecoderSession(session, config, { initialRows: streams });
    await runner.admit(Array.from({ length: streams }, (_, i) => prompt(i + 1, 16, config.vocabSize)));
    const tokens = new Array<number>(streams).fill(3);
    const latencies: number[] = [];
    for (let i = 0; i < STEPS + WARMUP; i++) {
      const t = performance.now();
      await runner.decode(tokens);
      if (i >= WARMUP) latencies.push(performance.now() - t);
    }
    return summarise(latencies, latencies.reduce((a, b) => a + b, 0) / 1000, STEPS * streams);
  } finally {
    await session.release();
  }
}

async function caseRows(
  name: string,
  float: OnnxModel,
  config: DecoderConfig,
  rows: ResultRow[],
  notes: string[],
): Promise<void> {
  const floatBytes = float.encode();
  const variants: [string, (m: OnnxModel) => void][] = [
    ['int8 weights, int8 compute (accuracy_level 4, default)', (m) => weightOnly(m, { bits: 8 })],
    ['int8 weights, float compute (accuracy_level 0)', (m) => weightOnly(m, { bits: 8, accuracyLevel: 0 })],
    ['int4 weights, block 32, symmetric (accuracy_level 4)', (m) => weightOnly(m, { bits: 4 })],
    [
      'int4 weights, block 128, zero points (accuracy_level 4)',
      (m) => weightOnly(m, { bits: 4, blockSize: 128, symmetric: false }),
    ],
    ['fp16 weights', (m) => quantizeFp16(m, { include: [], exclude: [] })],
  ];
  for (const streams of [1, 16]) {
    const base = await decodeRate(floatBytes, config, streams);
    const label = (what: string): string => `${name}, ${streams} stream${streams > 1 ? 's' : ''}: ${what}`;
    rows.push({ label: label('float32'), stats: base, note: `model ${(floatBytes.byteLength / 1024).toFixed(0)} KiB` });
    for (const [what, rewrite] of variants) {
      const model = cloneModel(float);
      rewrite(model);
      const bytes = model.encode();
      rows.push({
        label: label(what),
        stats: await decodeRate(bytes, config, streams),
        note: `model ${(bytes.byteLength / 1024).toFixed(0)} KiB (${(floatBytes.byteLength / bytes.byteLength).toFixed(2)}× smaller)`,
      });
      rows[rows.length - 1]!.ratio = rows[rows.length - 1]!.stats.throughput / base.throughput;
    }
  }
  notes.push(
    `${name}: ratio is decode tokens/s of the quantized graph over the float32 graph, same session options (1 intra-op thread).`,
  );
}

function weightOnly(model: OnnxModel, o: Partial<WeightOnlyOptions>): void {
  quantizeWeights(model, { accuracyLevel: 4, blockSize: 32, symmetric: true, ...o });
}

// Held-out accuracy of each method on the built-in tensor models: calibration and held-out rows are seeded random
// inputs (the models' weights are random too, so there is no real data distribution to draw from).
async function tensorAccuracy(notes: string[]): Promise<void> {
  const dir = join(tmpdir(), `nucleus-bench-quant-${process.pid}`);
  const models = await ensureBuiltinModels(join(dir, 'models'), { names: ['mlp-classifier', 'resnet-tiny'] });
  for (const m of models) {
    const float = await loadModel(m.modelPath);
    const input = float.graph.inputs[0]!;
    const dims = (input.type as { shape: (number | string)[] }).shape.slice(1) as number[];
    const width = dims.reduce((a, b) => a * b, 1);
    const rows = (seed: number, n: number): string =>
      Array.from({ length: n }, (_, i) =>
        JSON.stringify({
          input: { dims: [1, ...dims], data: Array.from(new SeededRandom(seed + i).normals(width, 1.5)) },
        }),
      ).join('\n');
    const big = width > 1000;
    const calibration = join(dir, `${m.name}-calibration.jsonl`);
    writeFileSync(calibration, rows(1, big ? 16 : 128));
    const held = join(dir, `${m.name}-held-out.jsonl`);
    writeFileSync(held, rows(10_000, big ? 16 : 512));
    const methods: [string, (q: OnnxModel) => Promise<unknown> | unknown][] = [
      ...(['minmax', 'percentile', 'entropy'] as const).map(
        (calibrator) =>
          [
            `static ${calibrator}`,
            (q: OnnxModel) =>
              quantizeStatic(q, parseQuantizeOptions<StaticOptions>('static', { calibration, calibrator })),
          ] as [string, (q: OnnxModel) => Promise<unknown>],
      ),
      ['dynamic', (q) => quantizeDynamic(q, { perChannel: true, include: [], exclude: [] })],
      ['int8 (weight-only)', (q) => weightOnly(q, { bits: 8 })],
      ['fp16', (q) => quantizeFp16(q, { include: [], exclude: [] })],
    ];
    const floatBytes = float.encode();
    for (const [method, rewrite] of methods) {
      const q = cloneModel(float);
      await rewrite(q);
      const bytes = q.encode();
      const a = await compareTensorModels(floatBytes, bytes, held);
      const out = Object.entries(a.outputs)[0]!;
      notes.push(
        `${m.name}, ${method}: file ${(floatBytes.byteLength / 1024).toFixed(1)} → ${(bytes.byteLength / 1024).toFixed(1)} KiB (${(floatBytes.byteLength / bytes.byteLength).toFixed(2)}×), ` +
          `top-1 agreement ${((a.top1Agreement ?? 0) * 100).toFixed(1)} % over ${a.samples} held-out rows, ${out[0]} max |Δ| ${out[1].maxAbsDiff.toPrecision(3)} mean |Δ| ${out[1].meanAbsDiff.toPrecision(3)}, ` +
          `speed ${(a.floatSeconds / a.quantizedSeconds).toFixed(2)}× float32`,
      );
    }
  }
}

// Perplexity and greedy next-token agreement of stories260K (generic graph) on its reference text, per method.
async function llmAccuracy(notes: string[]): Promise<void> {
  const llm = await loadLlm(join(STORIES, 'stories260K.gguf'), { graphStyle: 'generic' });
  const float = await loadModel(llm.onnxPath);
  const floatBytes = float.encode();
  const text = readFileSync(join(STORIES, 'reference-greedy-200.txt'), 'utf8');
  const methods: [string, (m: OnnxModel) => void][] = [
    ['int8', (m) => weightOnly(m, { bits: 8 })],
    ['int4 block 32 symmetric', (m) => weightOnly(m, { bits: 4 })],
    ['int4 block 128 zero points', (m) => weightOnly(m, { bits: 4, blockSize: 128, symmetric: false })],
    ['fp16', (m) => quantizeFp16(m, { include: [], exclude: [] })],
  ];
  for (const [method, rewrite] of methods) {
    const q = cloneModel(float);
    rewrite(q);
    const bytes = q.encode();
    const a = await compareLlms(floatBytes, bytes, llm.config, createTokenizer(llm.tokenizer), text);
    notes.push(
      `stories260K (generic graph), ${method}: ${(floatBytes.byteLength / bytes.byteLength).toFixed(2)}× smaller than float32; ` +
        `on reference-greedy-200.txt (${a.tokens} tokens) perplexity ${a.perplexity.float.toFixed(3)} → ${a.perplexity.quantized.toFixed(3)}, ` +
        `greedy next-token agreement ${(a.greedyAgreement * 100).toFixed(1)} %, max |Δlogit| ${a.maxAbsLogitDiff.toFixed(3)}`,
    );
  }
}

// The transform rewrites in place; each variant starts from its own copy.
function cloneModel(model: OnnxModel): OnnxModel {
  return OnnxModel.decode(model.encode());
}

/** Float32 against quantized (quant-int8) graphs: decode tokens/s and size of LLMs, accuracy of every method. */
export async function quantSuite(): Promise<string> {
  const rows: ResultRow[] = [];
  const notes: string[] = [];
  if (existsSync(join(STORIES, 'stories260K.gguf'))) {
    const llm = await loadLlm(join(STORIES, 'stories260K.gguf'), { graphStyle: 'contrib' });
    await caseRows('stories260K', await loadModel(llm.onnxPath), llm.config, rows, notes);
  } else {
    notes.push('stories260K skipped: ../shared/models/stories260K is absent.');
  }
  const mid = buildLlamaGraph(randomLlama(MID_ARCH), MID_ARCH, {
    ropeLayout: 'interleaved',
    style: 'contrib',
    name: 'mid_llama',
  });
  await caseRows(
    'random Llama (dim 512, 4 layers, vocab 4096)',
    mid,
    builtDecoderConfig(MID_ARCH, 'contrib', { eosTokenIds: [2] }),
    rows,
    notes,
  );
  notes.push(
    'Speed ratios come from one run on the recording machine, which other jobs may share (see p99): sizes and accuracies are exact, speeds indicative.',
  );
  await tensorAccuracy(notes);
  if (existsSync(join(STORIES, 'stories260K.gguf'))) await llmAccuracy(notes);
  const tables: ResultTable[] = [
    { title: 'Decode, contrib graph: float32 against quantized weights', unit: 'tokens', rows },
  ];
  return record('quant', machineInfo(), tables, notes);
}
