import type * as ort from 'onnxruntime-node';
import type { DraftModel } from '@nucleus/sdk';
import type { DecoderConfig } from '@nucleus/sdk/llm';
import { float16FromBits } from '@nucleus/sdk/onnx';
import { ConcatenatedKvRows } from './concatenated-kv-rows.js';
import { ContribDecoderSession } from './contrib-session.js';
import { DecoderSession } from './decoder-session.js';
import type { KvRows } from './kv-rows.js';
import { ResidentKvRows } from './resident-kv-rows.js';
import type { LogitsRow } from './sampler.js';

/** One sequence's cache in the draft model: the tokens it holds, and their KV as a single row. */
interface DraftCache {
  kv: KvRows;
  ids: number[];
}

/**
 * A draft model for speculative decoding, run in the generation worker with the same runners as the served model:
 * each sequence has a KV cache of its own (one row), brought up to the sequence before every draft — the tokens the
 * model rejected are cut off, those it appended are computed — so drafting k tokens costs k small steps.
 */
export class DraftModelRunner implements DraftModel {
  readonly #session: ort.InferenceSession;
  readonly #config: DecoderConfig;
  readonly #caches = new Map<number, DraftCache>();
  #runs = 0;

  constructor(session: ort.InferenceSession, config: DecoderConfig) {
    this.#session = session;
    this.#config = config;
  }

  get vocabSize(): number {
    return this.#config.vocabSize;
  }

  /** Sequences with a cache now. */
  get sequences(): number {
    return this.#caches.size;
  }

  /** Model runs so far (prefills, catch-ups and draft steps), for telemetry and to see what auto-off saves. */
  get runs(): number {
    return this.#runs;
  }

  async next(sequence: number, tokens: readonly number[]): Promise<Float32Array> {
    if (tokens.length === 0) throw new Error('a draft needs at least one token to follow');
    if (tokens.length >= this.#config.maxContext)
      throw new Error(`the draft model holds ${this.#config.maxContext} tokens; this sequence has ${tokens.length}`);
    let cache = this.#caches.get(sequence);
    // At least the last token is computed: its logits are the answer.
    const common = cache ? Math.min(commonPrefix(cache.ids, tokens), tokens.length - 1) : 0;
    if (cache && common === 0) {
      this.release(sequence);
      cache = undefined;
    }
    if (!cache) {
      const kv = this.#rows();
      const [step] = kv.prefillSteps([{ prompt: tokens }]);
      this.#runs++;
      const logits = await step!.run([0]);
      kv.keepRows([0]);
      this.#caches.set(sequence, { kv, ids: [...tokens] });
      return widen(logits[0]!);
    }
    if (common < cache.ids.length) {
      cache.kv.truncate([common]);
      cache.kv.keepRows([0]);
      cache.ids.length = common;
    }
    const added = tokens.slice(common);
    let last: LogitsRow;
    this.#runs++;
    try {
      if (added.length === 1) last = (await cache.kv.decode([0], added))[0]!;
      else last = (await cache.kv.verify([added]))[0]!.at(-1)!;
    } catch (err) {
      // The row may be half-updated: start over from the prompt next time.
      this.release(sequence);
      throw err;
    }
    cache.kv.keepRows([0]);
    cache.ids.push(...added);
    return widen(last);
  }

  release(sequence: number): void {
    const cache = this.#caches.get(sequence);
    if (!cache) return;
    this.#caches.delete(sequence);
    cache.kv.keepRows([]);
  }

  #rows(): KvRows {
    return this.#config.graphStyle === 'contrib'
      ? new ResidentKvRows(new ContribDecoderSession(this.#session, this.#config, { initialRows: 1 }))
      : new ConcatenatedKvRows(new DecoderSession(this.#session, this.#config));
  }
}

function commonPrefix(a: readonly number[], b: readonly number[]): number {
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a[i] === b[i]) i++;
  return i;
}

// The logits as float32 (a float16 graph's are widened), copied: the runner reuses its output buffers.
function widen(row: LogitsRow): Float32Array {
  if (row instanceof Float32Array) return new Float32Array(row);
  const out = new Float32Array(row.float16.length);
  for (let i = 0; i < out.length; i++) out[i] = float16FromBits(row.float16[i]!);
  return out;
}
