import { existsSync } from 'node:fs';
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
import { quantizeInt8, type Int8Options } from '@nucleus/plugin-quant-int8';
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
  const variants: [string, Int8Options][] = [
    ['int8 weights, int8 compute (accuracy_level 4, default)', { accuracyLevel: 4, blockSize: 32 }],
    ['int8 weights, float compute (accuracy_level 0)', { accuracyLevel: 0, blockSize: 32 }],
  ];
  for (const streams of [1, 16]) {
    const base = await decodeRate(floatBytes, config, streams);
    const label = (what: string): string => `${name}, ${streams} stream${streams > 1 ? 's' : ''}: ${what}`;
    rows.push({ label: label('float32'), stats: base, note: `model ${(floatBytes.byteLength / 1024).toFixed(0)} KiB` });
    for (const [what, options] of variants) {
      const model = cloneModel(float);
      const report = quantizeInt8(model, options);
      const bytes = model.encode();
      rows.push({
        label: label(what),
        stats: await decodeRate(bytes, config, streams),
        note: `model ${(bytes.byteLength / 1024).toFixed(0)} KiB (${(floatBytes.byteLength / bytes.byteLength).toFixed(2)}× smaller; the weights it quantized ${(report.floatBytes / report.int8Bytes).toFixed(2)}×)`,
      });
      rows[rows.length - 1]!.ratio = rows[rows.length - 1]!.stats.throughput / base.throughput;
    }
  }
  notes.push(
    `${name}: ratio is decode tokens/s of the int8 graph over the float32 graph, same session options (1 intra-op thread).`,
  );
}

// The transform rewrites in place; each variant starts from its own copy.
function cloneModel(model: OnnxModel): OnnxModel {
  return OnnxModel.decode(model.encode());
}

/** Float32 against int8 (quant-int8) decoder graphs: decode tokens/s and model size. */
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
  const tables: ResultTable[] = [
    { title: 'Decode, contrib graph: float32 against int8 weights', unit: 'tokens', rows },
  ];
  return record('quant', machineInfo(), tables, notes);
}
