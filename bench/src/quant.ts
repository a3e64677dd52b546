import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as ort from 'onnxruntime-node';
import { loadModel, OnnxModel, tensorByteLength } from '@nucleus/sdk/onnx';
import { SeededRandom } from '@nucleus/sdk';
import { buildLlamaGraph, builtDecoderConfig, type DecoderConfig, type LlamaArchitecture } from '@nucleus/sdk/llm';
import { loadLlm } from './llm-models.js';
import { randomLlama } from './random-llama.js';
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
  quantizeWeightsDq,
  type QuantizeReport,
  type StaticOptions,
  type WeightDqOptions,
  type WeightOnlyOptions,
} from '@nucleus/plugin-quant-int8';
import { compareLlms, compareTensorModels, type TensorAccuracy } from '@nucleus/core/internal/cli/quantize-evaluation';
import { createTokenizer, type LlmTokenizer } from '@nucleus/sdk/llm';
import { machineInfo } from './machine.js';
import { recordDocument, renderMarkdown, type ResultRow, type ResultTable } from './report.js';
import { buildResnet18 } from './resnet18.js';
import { buildTabularMlp } from './tabular-mlp.js';
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
    ['int4 weights, block 64, symmetric (accuracy_level 4)', (m) => weightOnly(m, { bits: 4, blockSize: 64 })],
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

// The transform's defaults: int4 computes the RoPE tables in the graph, int8 keeps them stored.
function weightOnly(model: OnnxModel, o: Partial<WeightOnlyOptions>): void {
  const ropeTables = o.bits === 4 ? 'computed' : 'stored';
  quantizeWeights(model, { accuracyLevel: 4, blockSize: 32, symmetric: true, ropeTables, ...o });
}

// Where a graph's bytes go: weight blocks, their scales and zero points, RoPE tables, other float constants, and the
// graph itself (nodes, names, value infos, each initializer's header).
function sizeBreakdown(model: OnnxModel): string {
  const parts = { blocks: 0, scales: 0, zeroPoints: 0, rope: 0, float: 0, other: 0 };
  for (const t of model.graph.initializers) {
    const bytes = tensorByteLength(t);
    if (t.name.endsWith('.q4') || t.name.endsWith('.q8')) parts.blocks += bytes;
    else if (t.name.endsWith('.scales')) parts.scales += bytes;
    else if (t.name.endsWith('.zero_points')) parts.zeroPoints += bytes;
    else if (t.name.startsWith('rope.')) parts.rope += bytes;
    else if (t.dtype === 'float32') parts.float += bytes;
    else parts.other += bytes;
  }
  const total = model.encode().byteLength;
  const data = Object.values(parts).reduce((a, b) => a + b, 0);
  const bare = cloneModel(model);
  bare.graph.initializers = [];
  const graph = bare.encode().byteLength;
  const kib = (n: number): string => `${(n / 1024).toFixed(1)} KiB`;
  return (
    `${kib(total)}: 4/8-bit blocks ${kib(parts.blocks)}, scales ${kib(parts.scales)}, zero points ${kib(parts.zeroPoints)}, ` +
    `RoPE tables ${kib(parts.rope)}, other float32 (weights left float, norms) ${kib(parts.float)}, other constants ${kib(parts.other)}, ` +
    `graph (nodes and names) ${kib(graph)}, initializer headers ${kib(total - data - graph)}`
  );
}

// A model with no vocabulary (random weights) read on fixed ids: "text" is the ids, space-separated.
function idsTokenizer(vocabSize: number): LlmTokenizer {
  return {
    vocabSize,
    eosTokenIds: [],
    encode: (text) => text.split(' ').map(Number),
    decode: (ids) => ids.join(' '),
    createStreamDecoder: () => ({ push: (id) => `${id} `, flush: () => '' }),
  };
}

/** One tensor model under one method: sizes, and accuracy on held-out rows against the float model. */
interface TensorRow {
  model: string;
  method: string;
  floatBytes: number;
  bytes: number;
  accuracy: TensorAccuracy;
}

// Held-out accuracy of each method on tensor models: calibration and held-out rows are seeded random inputs (the
// models' weights are random too, so there is no real data distribution to draw from).
async function tensorAccuracy(notes: string[]): Promise<TensorRow[]> {
  const dir = join(tmpdir(), `nucleus-bench-quant-${process.pid}`);
  const models = await ensureBuiltinModels(join(dir, 'models'), { names: ['mlp-classifier', 'resnet-tiny'] });
  const out: TensorRow[] = [];
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
      ['int8 (MatMulNBits blocks)', (q) => weightOnly(q, { bits: 8 })],
      ['int8-dq (weights only, float compute)', (q) => weightDq(q)],
      ['fp16', (q) => quantizeFp16(q, { include: [], exclude: [] })],
    ];
    out.push(...(await measureTensor(m.name, float, methods, held)));
    notes.push(smallModelBound(m.name, float));
  }
  // Models whose weights are the file: ResNet-18's shape (11.7 M weights) on 64 seeded random images (N(0, 1), the
  // quantize command's default held-out set) and a 64 → 512 → 512 → 10 tabular MLP on 512 held-out rows.
  const tabularRows = join(dir, 'tabular-mlp-held-out.jsonl');
  const rng = new SeededRandom(77);
  writeFileSync(
    tabularRows,
    Array.from({ length: 512 }, () => JSON.stringify({ input: Array.from(rng.normals(64, 1)) })).join('\n'),
  );
  const big: [string, Uint8Array, string | undefined][] = [
    ['ResNet-18 (random weights)', buildResnet18(), undefined],
    ['tabular MLP 64-512-512-10 (random weights)', buildTabularMlp(), tabularRows],
  ];
  for (const [name, bytes, held] of big) {
    const methods: [string, (q: OnnxModel) => unknown][] = [
      ['int8-dq (weights only, float compute)', (q) => weightDq(q)],
      ['dynamic', (q) => quantizeDynamic(q, { perChannel: true, include: [], exclude: [] })],
      ['fp16', (q) => quantizeFp16(q, { include: [], exclude: [] })],
    ];
    out.push(...(await measureTensor(name, OnnxModel.decode(bytes), methods, held)));
  }
  notes.push(
    'ResNet-18 with random weights and no batch norm maps every image to nearly the same logits (one class on top for every ' +
      'image checked, logits of σ ≈ 49 and a top-1 margin of 1–6): int8 weights move logits by up to ≈ 2.6 (≈ 1.7 % of their range), ' +
      'so the rows with the smallest margins flip. Its top-1 agreement says more about those random logits than about int8; ' +
      'the tabular MLP, whose outputs depend on its input, is the ≥ 99 % row.',
  );
  return out;
}

function weightDq(model: OnnxModel): QuantizeReport {
  return quantizeWeightsDq(model, parseQuantizeOptions<WeightDqOptions>('weightDq', {}));
}

async function measureTensor(
  name: string,
  float: OnnxModel,
  methods: [string, (q: OnnxModel) => Promise<unknown> | unknown][],
  held?: string,
): Promise<TensorRow[]> {
  const floatBytes = float.encode();
  const rows: TensorRow[] = [];
  for (const [method, rewrite] of methods) {
    const q = cloneModel(float);
    await rewrite(q);
    const bytes = q.encode();
    const accuracy = await compareTensorModels(floatBytes, bytes, held);
    rows.push({ model: name, method, floatBytes: floatBytes.byteLength, bytes: bytes.byteLength, accuracy });
  }
  return rows;
}

// The most int8 weights can shrink a small model's file: every weight at 1 byte plus its scales, not one byte of
// graph added, and (the limit of any method) with weights of 0 bytes.
function smallModelBound(name: string, float: OnnxModel): string {
  const total = float.encode().byteLength;
  const report = weightDq(cloneModel(float));
  const rest = total - report.floatBytes;
  return (
    `${name}: ${total} bytes, of which ${report.floatBytes} are the MatMul/Gemm/Conv weights int8 can shrink; ` +
    `the rest (graph, names, biases) is ${rest} bytes. Upper bound with int8 weights and float32 per-channel scales and no added ` +
    `graph: ${(total / (rest + report.int8Bytes)).toFixed(2)}×; with weights of 0 bytes: ${(total / rest).toFixed(2)}×. ` +
    'The ≥ 3.5× goal cannot be met on it by any weight format; it is met on the models whose weights are the file.'
  );
}

function renderTensorTable(rows: TensorRow[]): string {
  const lines = [
    '## Tensor models: size and accuracy against float32',
    '',
    '| model | method | file KiB | smaller | top-1 agreement | rows | max abs Δ | mean abs Δ | speed | compute |',
    '| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |',
  ];
  for (const r of rows) {
    const a = r.accuracy;
    const [output, diff] = Object.entries(a.outputs)[0]!;
    const compute = r.method.startsWith('int8-dq') || r.method === 'fp16' ? 'float32' : 'int8';
    lines.push(
      `| ${r.model} | ${r.method} | ${(r.floatBytes / 1024).toFixed(1)} → ${(r.bytes / 1024).toFixed(1)} | ${(r.floatBytes / r.bytes).toFixed(2)}× | ` +
        `${a.top1Agreement === undefined ? '–' : `${(a.top1Agreement * 100).toFixed(1)} %`} | ${a.samples} | ` +
        `${diff.maxAbsDiff.toPrecision(3)} (${output}) | ${diff.meanAbsDiff.toPrecision(3)} | ${(a.floatSeconds / a.quantizedSeconds).toFixed(2)}× | ${compute} |`,
    );
  }
  lines.push(
    '',
    'Speed is float seconds over quantized seconds for the same rows, one intra-op thread, one run on a shared machine: indicative. ' +
      '`int8-dq` computes in float32 on weights dequantized by DequantizeLinear on every run, so it buys size, not speed.',
    '',
  );
  return lines.join('\n');
}

// Perplexity and greedy next-token agreement (generic graphs, teacher-forced) per method: stories260K on its reference
// text, and the dim-512 random Llama on 256 seeded random ids (no vocabulary: its perplexity is that of noise, the
// agreement and logit differences are what say how close the quantized model stays).
async function llmAccuracy(notes: string[]): Promise<void> {
  const methods: [string, (m: OnnxModel) => void][] = [
    ['int8', (m) => weightOnly(m, { bits: 8 })],
    ['int4 block 32 symmetric (RoPE stored)', (m) => weightOnly(m, { bits: 4, ropeTables: 'stored' })],
    ['int4 block 32 symmetric', (m) => weightOnly(m, { bits: 4 })],
    ['int4 block 64 symmetric', (m) => weightOnly(m, { bits: 4, blockSize: 64 })],
    ['int4 block 128 symmetric', (m) => weightOnly(m, { bits: 4, blockSize: 128 })],
    ['int4 block 128 zero points', (m) => weightOnly(m, { bits: 4, blockSize: 128, symmetric: false })],
    ['fp16', (m) => quantizeFp16(m, { include: [], exclude: [] })],
  ];
  const cases: {
    name: string;
    float: OnnxModel;
    config: DecoderConfig;
    tokenizer: LlmTokenizer;
    text: string;
    what: string;
  }[] = [];
  if (existsSync(join(STORIES, 'stories260K.gguf'))) {
    const llm = await loadLlm(join(STORIES, 'stories260K.gguf'), { graphStyle: 'generic' });
    cases.push({
      name: 'stories260K (generic graph)',
      float: await loadModel(llm.onnxPath),
      config: llm.config,
      tokenizer: createTokenizer(llm.tokenizer),
      text: readFileSync(join(STORIES, 'reference-greedy-200.txt'), 'utf8'),
      what: 'reference-greedy-200.txt',
    });
  }
  cases.push({
    name: 'random Llama (dim 512, 4 layers, vocab 4096, generic graph)',
    float: buildLlamaGraph(randomLlama(MID_ARCH), MID_ARCH, {
      ropeLayout: 'interleaved',
      style: 'generic',
      name: 'mid_llama',
    }),
    config: builtDecoderConfig(MID_ARCH, 'generic', { eosTokenIds: [2] }),
    tokenizer: idsTokenizer(MID_ARCH.vocabSize),
    text: prompt(99, 256, MID_ARCH.vocabSize).join(' '),
    what: '256 seeded random ids',
  });
  notes.push(
    'The random Llama has random weights: its next-token logits are nearly flat (perplexity above its vocabulary of ' +
      '4096 on any ids), so argmax margins are tiny and greedy agreement under 4-bit weights is low whatever the ' +
      'format; its perplexity change and logit differences are the figures to compare.',
  );
  for (const c of cases) {
    const floatBytes = c.float.encode();
    notes.push(`${c.name}, float32 file ${sizeBreakdown(c.float)}`);
    for (const [method, rewrite] of methods) {
      const q = cloneModel(c.float);
      rewrite(q);
      const bytes = q.encode();
      const a = await compareLlms(floatBytes, bytes, c.config, c.tokenizer, c.text);
      notes.push(
        `${c.name}, ${method}: ${(floatBytes.byteLength / bytes.byteLength).toFixed(2)}× smaller than float32 (whole file); ` +
          `on ${c.what} (${a.tokens} tokens) perplexity ${a.perplexity.float.toFixed(3)} → ${a.perplexity.quantized.toFixed(3)}, ` +
          `greedy next-token agreement ${(a.greedyAgreement * 100).toFixed(1)} %, max |Δlogit| ${a.maxAbsLogitDiff.toFixed(3)}, mean ${a.meanAbsLogitDiff.toFixed(4)}` +
          (method.startsWith('int4') ? `; file ${sizeBreakdown(q)}` : ''),
      );
    }
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
  const tensorRows = await tensorAccuracy(notes);
  await llmAccuracy(notes);
  const tables: ResultTable[] = [
    { title: 'Decode, contrib graph: float32 against quantized weights', unit: 'tokens', rows },
  ];
  const machine = machineInfo();
  const markdown = `${renderMarkdown('quant', machine, tables, []).trimEnd()}\n\n${renderTensorTable(tensorRows)}\n## Notes\n\n${notes.map((n) => `- ${n}`).join('\n')}\n`;
  return recordDocument('quant', markdown, { suite: 'quant', machine, tables, tensorRows, notes });
}
