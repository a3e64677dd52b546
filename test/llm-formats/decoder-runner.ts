// A small single-purpose driver for the decoder graphs, running ORT directly: enough to prove the numbers (greedy
// decoding, KV-cache steps, padded batches). The engine's real generation loop lives elsewhere.
import * as ort from 'onnxruntime-node';
import type { DecoderConfig } from '../helpers/llm.js';

ort.env.logLevel = 'fatal';

const sessionOptions: ort.InferenceSession.SessionOptions = {
  intraOpNumThreads: 1,
  extra: { session: { intra_op: { allow_spinning: '0' } } },
};

type Feeds = Record<string, ort.Tensor>;

/** The KV cache of a batch: one tensor per layer and part, [batch, kvHeads, length, headDim]. */
export type KvCache = Map<string, ort.Tensor>;

/** Logits of one run, [batch, seq, vocab], with the cache it produced. */
export interface StepResult {
  logits: Float32Array;
  batch: number;
  seq: number;
  cache: KvCache;
}

function int64(values: readonly number[], dims: number[]): ort.Tensor {
  return new ort.Tensor(
    'int64',
    BigInt64Array.from(values, (v) => BigInt(v)),
    dims,
  );
}

/** Index of the largest value in `logits[from, from + n)` (first on ties, as run.c's argmax). */
export function argmax(logits: Float32Array, from: number, n: number): number {
  let best = 0;
  for (let i = 1; i < n; i++) if (logits[from + i]! > logits[from + best]!) best = i;
  return best;
}

/** Largest absolute difference of two equally long arrays. */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`lengths differ: ${a.length} vs ${b.length}`);
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i]! - b[i]!));
  return d;
}

/** Opens a decoder graph of either style and runs steps on it. */
export class DecoderRunner {
  private constructor(
    readonly session: ort.InferenceSession,
    readonly config: DecoderConfig,
  ) {}

  static async open(onnx: string | Uint8Array, config: DecoderConfig): Promise<DecoderRunner> {
    const session =
      typeof onnx === 'string'
        ? await ort.InferenceSession.create(onnx, sessionOptions)
        : await ort.InferenceSession.create(onnx, sessionOptions);
    return new DecoderRunner(session, config);
  }

  async close(): Promise<void> {
    await this.session.release();
  }

  /** An empty cache for `batch` rows. */
  emptyCache(batch: number): KvCache {
    const c = this.config;
    const cache: KvCache = new Map();
    for (let l = 0; l < c.numLayers; l++) {
      for (const part of ['key', 'value'])
        cache.set(`${l}.${part}`, new ort.Tensor('float32', new Float32Array(0), [batch, c.numKvHeads, 0, c.headDim]));
    }
    return cache;
  }

  /**
   * One run of the generic graph: `ids` rows of equal length, `mask` [batch, past + seq] (1 real, 0 padding),
   * `positions` [batch, seq].
   */
  async stepGeneric(ids: number[][], mask: number[][], positions: number[][], cache: KvCache): Promise<StepResult> {
    const batch = ids.length;
    const seq = ids[0]!.length;
    const feeds: Feeds = {
      input_ids: int64(ids.flat(), [batch, seq]),
      attention_mask: int64(mask.flat(), [batch, mask[0]!.length]),
      position_ids: int64(positions.flat(), [batch, seq]),
    };
    for (const [k, t] of cache) feeds[`past_key_values.${k}`] = t;
    return this.collect(await this.session.run(feeds), batch, seq);
  }

  /** One run of the contrib graph: rows right-padded to equal length; `totals[b]` = row b's past + new tokens. */
  async stepContrib(ids: number[][], positions: number[][], totals: number[], cache: KvCache): Promise<StepResult> {
    const batch = ids.length;
    const seq = ids[0]!.length;
    const feeds: Feeds = {
      input_ids: int64(ids.flat(), [batch, seq]),
      position_ids: int64(positions.flat(), [batch, seq]),
      seqlens_k: new ort.Tensor(
        'int32',
        Int32Array.from(totals, (t) => t - 1),
        [batch],
      ),
      total_sequence_length: new ort.Tensor('int32', Int32Array.of(Math.max(...totals)), []),
    };
    for (const [k, t] of cache) feeds[`past_key_values.${k}`] = t;
    return this.collect(await this.session.run(feeds), batch, seq);
  }

  private collect(out: ort.InferenceSession.OnnxValueMapType, batch: number, seq: number): StepResult {
    const cache: KvCache = new Map();
    for (let l = 0; l < this.config.numLayers; l++) {
      for (const part of ['key', 'value']) cache.set(`${l}.${part}`, out[`present.${l}.${part}`] as ort.Tensor);
    }
    return { logits: (out.logits as ort.Tensor).data as Float32Array, batch, seq, cache };
  }

  /** Logits of row `b`, position `s`. */
  row(result: StepResult, b: number, s: number): Float32Array {
    const v = this.config.vocabSize;
    const at = (b * result.seq + s) * v;
    return result.logits.subarray(at, at + v);
  }

  /**
   * Greedy decoding the way llama2.c's run.c counts it: `steps` positions in all, prompt included; returns the token
   * each step advanced to (forced prompt tokens first). Stops after BOS or an EOS id in `stopAt`. The prompt is
   * prefilled in one run.
   */
  async greedy(prompt: readonly number[], steps: number, stopAt: readonly number[] = []): Promise<number[]> {
    const contrib = this.config.graphStyle === 'contrib';
    const next: number[] = prompt.slice(1);
    let cache = this.emptyCache(1);
    let ids = [...prompt];
    let past = 0;
    while (next.length < steps) {
      const total = past + ids.length;
      const positions = [ids.map((_, i) => past + i)];
      const r = contrib
        ? await this.stepContrib([ids], positions, [total], cache)
        : await this.stepGeneric([ids], [Array<number>(total).fill(1)], positions, cache);
      cache = r.cache;
      past = total;
      const token = argmax(this.row(r, 0, ids.length - 1), 0, this.config.vocabSize);
      next.push(token);
      if (stopAt.includes(token)) break;
      ids = [token];
    }
    return next.slice(0, steps);
  }
}
