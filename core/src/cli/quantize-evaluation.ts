import { readFileSync } from 'node:fs';
import * as ort from 'onnxruntime-node';
import { SeededRandom } from '@nucleus/sdk';
import type { DecoderConfig, LlmTokenizer } from '@nucleus/sdk/llm';
import { UsageError } from './exit-codes.js';

/** How a quantized tensor model compares with its float source on the same inputs. */
export interface TensorAccuracy {
  kind: 'tensor';
  /** Where the inputs came from: the `--eval` file, or seeded random values. */
  inputs: string;
  samples: number;
  /** Per float output: largest and mean |quantized − float|. */
  outputs: Record<string, { maxAbsDiff: number; meanAbsDiff: number }>;
  /** Share of rows whose largest entry of `classifierOutput` is the same (absent when no output looks like scores). */
  top1Agreement?: number;
  classifierOutput?: string;
  /** Seconds to run every sample, float and quantized. */
  floatSeconds: number;
  quantizedSeconds: number;
}

/** How a quantized LLM compares with its float source on a text (teacher-forced, one prefill of the whole text). */
export interface LlmAccuracy {
  kind: 'llm';
  text: string;
  tokens: number;
  perplexity: { float: number; quantized: number };
  /** Share of positions where both models' most likely next token is the same. */
  greedyAgreement: number;
  maxAbsLogitDiff: number;
  meanAbsLogitDiff: number;
  floatSeconds: number;
  quantizedSeconds: number;
}

type Feeds = Record<string, ort.Tensor>;

const intraOp = { intraOpNumThreads: 1 };

async function timedRuns(
  bytes: Uint8Array,
  feeds: Feeds[],
): Promise<{ outputs: ort.InferenceSession.ReturnType[]; seconds: number }> {
  const session = await ort.InferenceSession.create(bytes, intraOp);
  try {
    // One run first so session set-up and first-run allocation are not timed.
    await session.run(feeds[0]!);
    const outputs: ort.InferenceSession.ReturnType[] = [];
    const started = performance.now();
    for (const f of feeds) outputs.push(await session.run(f));
    return { outputs, seconds: (performance.now() - started) / 1000 };
  } finally {
    await session.release();
  }
}

/**
 * Feeds for a tensor model: each JSON line of `path` (input name → nested array or `{ dims, data }`), or, without a file, 64 seeded
 * random rows (normal, σ 1) for a model whose inputs are all float with a batch axis.
 */
export function tensorFeeds(
  session: { inputs: { name: string; type: string; dims: (number | string)[] }[] },
  path?: string,
): { feeds: Feeds[]; source: string } {
  if (path) {
    const feeds: Feeds[] = [];
    readFileSync(path, 'utf8')
      .split('\n')
      .forEach((line, i) => {
        if (line.trim() === '') return;
        let record: Record<string, unknown>;
        try {
          record = JSON.parse(line) as Record<string, unknown>;
        } catch (err) {
          throw new UsageError(`--eval ${path}:${i + 1}: not JSON (${(err as Error).message})`);
        }
        const f: Feeds = {};
        for (const input of session.inputs) {
          const value = record[input.name];
          let dims: number[] = [];
          let flat: number[];
          if (Array.isArray(value)) {
            for (let v: unknown = value; Array.isArray(v); v = v[0]) dims.push(v.length);
            flat = (value as unknown[]).flat(Infinity) as number[];
          } else if (value && typeof value === 'object' && 'dims' in value && 'data' in value) {
            ({ dims, data: flat } = value as { dims: number[]; data: number[] });
          } else throw new UsageError(`--eval ${path}:${i + 1}: no array or { dims, data } for input "${input.name}"`);
          if (dims.length === input.dims.length - 1) dims.unshift(1);
          f[input.name] =
            input.type === 'int64'
              ? new ort.Tensor(
                  'int64',
                  BigInt64Array.from(flat, (x) => BigInt(x)),
                  dims,
                )
              : new ort.Tensor('float32', Float32Array.from(flat), dims);
        }
        feeds.push(f);
      });
    if (feeds.length === 0) throw new UsageError(`--eval ${path} holds no samples`);
    return { feeds, source: path };
  }
  const rng = new SeededRandom(17);
  const f: Feeds = {};
  for (const input of session.inputs) {
    if (input.type !== 'float32')
      throw new UsageError(`input "${input.name}" is ${input.type}: give held-out inputs with --eval FILE.jsonl`);
    const dims = input.dims.map((d, i) => (typeof d === 'number' && d > 0 ? d : i === 0 ? 64 : 1));
    f[input.name] = new ort.Tensor(
      'float32',
      rng.normals(
        dims.reduce((a, b) => a * b, 1),
        1,
      ),
      dims,
    );
  }
  return { feeds: [f], source: 'seeded random normal inputs (σ 1; give held-out data with --eval)' };
}

/** Runs both graphs on the same inputs and compares every float output. */
export async function compareTensorModels(
  floatBytes: Uint8Array,
  quantizedBytes: Uint8Array,
  evalPath?: string,
): Promise<TensorAccuracy> {
  const probe = await ort.InferenceSession.create(floatBytes, intraOp);
  const meta = probe.inputMetadata.map((m) => ({
    name: m.name,
    type: m.isTensor ? m.type : 'unknown',
    dims: m.isTensor ? [...m.shape] : [],
  }));
  const outputMeta = probe.outputMetadata;
  await probe.release();
  const { feeds, source } = tensorFeeds({ inputs: meta }, evalPath);
  const float = await timedRuns(floatBytes, feeds);
  const quantized = await timedRuns(quantizedBytes, feeds);
  const outputs: TensorAccuracy['outputs'] = {};
  let classifierOutput: string | undefined;
  let agree = 0;
  let rows = 0;
  for (const o of outputMeta) {
    if (!o.isTensor || o.type !== 'float32') continue;
    let max = 0;
    let sum = 0;
    let count = 0;
    for (let s = 0; s < feeds.length; s++) {
      const a = float.outputs[s]![o.name]!.data as Float32Array;
      const b = quantized.outputs[s]![o.name]!.data as Float32Array;
      for (let i = 0; i < a.length; i++) {
        const d = Math.abs(a[i]! - b[i]!);
        max = Math.max(max, d);
        sum += d;
      }
      count += a.length;
    }
    outputs[o.name] = { maxAbsDiff: max, meanAbsDiff: sum / Math.max(1, count) };
    // The first float output with more than one entry per row is taken as class scores (logits or probabilities).
    const dims = float.outputs[0]![o.name]!.dims;
    const width = dims.at(-1) ?? 1;
    if (classifierOutput === undefined && dims.length >= 2 && width > 1) {
      classifierOutput = o.name;
      for (let s = 0; s < feeds.length; s++) {
        const a = float.outputs[s]![o.name]!.data as Float32Array;
        const b = quantized.outputs[s]![o.name]!.data as Float32Array;
        for (let r = 0; r < a.length / width; r++, rows++)
          if (argmax(a, r * width, width) === argmax(b, r * width, width)) agree++;
      }
    }
  }
  return {
    kind: 'tensor',
    inputs: source,
    samples: feeds.reduce((n, f) => n + (Object.values(f)[0]?.dims[0] ?? 1), 0),
    outputs,
    ...(classifierOutput !== undefined && { classifierOutput, top1Agreement: agree / Math.max(1, rows) }),
    floatSeconds: float.seconds,
    quantizedSeconds: quantized.seconds,
  };
}

function argmax(x: Float32Array, start: number, width: number): number {
  let best = 0;
  for (let j = 1; j < width; j++) if (x[start + j]! > x[start + best]!) best = j;
  return best;
}

/**
 * Perplexity and greedy next-token agreement of two decoder graphs (the generic export layout: `input_ids`,
 * `attention_mask`, `position_ids`, empty `past_key_values.N.*`) over one prefill of `text`.
 */
export async function compareLlms(
  floatBytes: Uint8Array,
  quantizedBytes: Uint8Array,
  config: DecoderConfig,
  tokenizer: LlmTokenizer,
  text: string,
): Promise<LlmAccuracy> {
  const ids = tokenizer.encode(text, { addBos: true }).slice(0, Math.min(config.maxContext, 512));
  if (ids.length < 2) throw new UsageError('the --text gives fewer than 2 tokens: nothing to predict');
  const T = ids.length;
  const feeds = (names: readonly string[]): Feeds => {
    const f: Feeds = {};
    for (const name of names) {
      if (name === 'input_ids') f[name] = new ort.Tensor('int64', BigInt64Array.from(ids, BigInt), [1, T]);
      else if (name === 'attention_mask') f[name] = new ort.Tensor('int64', new BigInt64Array(T).fill(1n), [1, T]);
      else if (name === 'position_ids')
        f[name] = new ort.Tensor(
          'int64',
          BigInt64Array.from({ length: T }, (_, i) => BigInt(i)),
          [1, T],
        );
      else if (name.startsWith('past_key_values.'))
        f[name] = new ort.Tensor(
          config.kvDtype,
          config.kvDtype === 'float16' ? new Uint16Array(0) : new Float32Array(0),
          [1, config.numKvHeads, 0, config.headDim],
        );
      else
        throw new UsageError(
          `the decoder graph has an input "${name}" this report does not feed (a generic graph is needed)`,
        );
    }
    return f;
  };
  const run = async (bytes: Uint8Array): Promise<{ logits: Float32Array; seconds: number }> => {
    const session = await ort.InferenceSession.create(bytes, intraOp);
    try {
      const f = feeds(session.inputNames);
      const started = performance.now();
      const out = await session.run(f, ['logits']);
      return { logits: out.logits!.data as Float32Array, seconds: (performance.now() - started) / 1000 };
    } finally {
      await session.release();
    }
  };
  const a = await run(floatBytes);
  const b = await run(quantizedBytes);
  const V = config.vocabSize;
  let nllA = 0;
  let nllB = 0;
  let agree = 0;
  let max = 0;
  let sum = 0;
  for (let t = 0; t < T - 1; t++) {
    const next = ids[t + 1]!;
    nllA += nll(a.logits, t * V, V, next);
    nllB += nll(b.logits, t * V, V, next);
    if (argmax(a.logits, t * V, V) === argmax(b.logits, t * V, V)) agree++;
    for (let j = 0; j < V; j++) {
      const d = Math.abs(a.logits[t * V + j]! - b.logits[t * V + j]!);
      max = Math.max(max, d);
      sum += d;
    }
  }
  return {
    kind: 'llm',
    text: text.length > 80 ? `${text.slice(0, 77)}...` : text,
    tokens: T,
    perplexity: { float: Math.exp(nllA / (T - 1)), quantized: Math.exp(nllB / (T - 1)) },
    greedyAgreement: agree / (T - 1),
    maxAbsLogitDiff: max,
    meanAbsLogitDiff: sum / ((T - 1) * V),
    floatSeconds: a.seconds,
    quantizedSeconds: b.seconds,
  };
}

// −log softmax(logits)[target], computed stably.
function nll(logits: Float32Array, start: number, width: number, target: number): number {
  let max = -Infinity;
  for (let j = 0; j < width; j++) max = Math.max(max, logits[start + j]!);
  let sum = 0;
  for (let j = 0; j < width; j++) sum += Math.exp(logits[start + j]! - max);
  return Math.log(sum) + max - logits[start + target]!;
}
