import * as ort from 'onnxruntime-node';
import type { ContribIo, DecoderConfig } from '../llm-model.js';
import { kvLayoutOf } from './decoder-session.js';
import type { KvArray, KvLayout } from './kv-batch.js';
import type { LogitsRow } from './sampler.js';

/**
 * A runner that keeps the running batch's KV cache itself, in buffers it reuses at every step; the loop only names
 * rows. Row r is the loop's r-th running sequence; rows that join are appended, rows that leave are dropped with
 * `keepRows`.
 */
export interface ResidentKvRunner {
  readonly resident: true;
  readonly layout: KvLayout;
  /** Tokens cached per row, in row order. */
  readonly lengths: readonly number[];
  /** Prefills prompts from an empty cache into new rows after the running ones; the last position's logits of each. */
  admit(prompts: readonly (readonly number[])[]): Promise<LogitsRow[]>;
  /** Appends one token to every row. */
  decode(tokens: readonly number[]): Promise<LogitsRow[]>;
  /** Keeps these rows (ascending), moved down to rows 0..n−1 in that order. */
  keepRows(rows: readonly number[]): void;
  /** Drops every row (after a failed step). */
  clear(): void;
}

/** Whether a runner keeps the KV cache itself. */
export function isResidentKvRunner(runner: object): runner is ResidentKvRunner {
  return (runner as { resident?: unknown }).resident === true;
}

/**
 * Runs a contrib-style graph (GroupQueryAttention over right-padded rows, see `ContribIo`) with one pre-allocated
 * buffer per layer and part, `[rows, kvHeads, maxContext, headDim]`. The running rows' slice of it is fed as the past
 * and bound as the present output, so ORT writes each step's new token in place: nothing is copied or concatenated
 * per step; a row that leaves costs one move of the rows after it. Prompts start from an empty cache (ORT takes a
 * multi-token step over a non-empty cache only at batch 1), so the prefix cache does not feed this runner.
 */
export class ContribDecoderSession implements ResidentKvRunner {
  readonly resident = true;
  readonly layout: KvLayout;
  readonly #session: ort.InferenceSession;
  readonly #io: ContribIo;
  readonly #maxContext: number;
  readonly #padId: number;
  readonly #rowSize: number;
  #capacity = 0;
  #keys: KvArray[] = [];
  #values: KvArray[] = [];
  #lengths: number[] = [];

  constructor(session: ort.InferenceSession, config: DecoderConfig, options: { initialRows?: number } = {}) {
    if (config.graphStyle !== 'contrib' || !config.contribIo) throw new Error('ContribDecoderSession needs a contrib-style decoder (contribIo)');
    this.#session = session;
    this.#io = config.contribIo;
    this.layout = kvLayoutOf(config);
    this.#maxContext = config.maxContext;
    this.#padId = config.padTokenId ?? config.eosTokenIds[0] ?? 0;
    this.#rowSize = config.numKvHeads * config.maxContext * config.headDim;
    const inputs = new Set(session.inputNames);
    for (const name of ['input_ids', this.#io.positionIds, this.#io.seqlensK, this.#io.totalSequenceLength]) {
      if (!inputs.has(name)) throw new Error(`the contrib decoder has no '${name}' input (inputs: ${session.inputNames.join(', ')})`);
    }
    this.#grow(Math.max(1, options.initialRows ?? 1));
  }

  get lengths(): readonly number[] {
    return this.#lengths;
  }

  /** Rows the buffers hold now (they grow, doubling, as rows join). */
  get capacity(): number {
    return this.#capacity;
  }

  async admit(prompts: readonly (readonly number[])[]): Promise<LogitsRow[]> {
    if (prompts.length === 0) return [];
    const first = this.#lengths.length;
    const rows = prompts.length;
    for (const p of prompts) {
      if (p.length === 0) throw new Error('an empty prompt cannot be prefilled');
      if (p.length > this.#maxContext) throw new Error(`a prompt of ${p.length} tokens does not fit the ${this.#maxContext}-token context`);
    }
    this.#grow(first + rows);
    // Right-padded: row r's tokens at 0..len−1; the padding writes KV past the row's length, which no step reads
    // before a decode overwrites it.
    const width = Math.max(...prompts.map((p) => p.length));
    const ids = new BigInt64Array(rows * width).fill(BigInt(this.#padId));
    const positions = new BigInt64Array(rows * width);
    prompts.forEach((p, r) => {
      for (let i = 0; i < width; i++) {
        if (i < p.length) ids[r * width + i] = BigInt(p[i]!);
        positions[r * width + i] = BigInt(Math.min(i, p.length - 1));
      }
    });
    const lengths = prompts.map((p) => p.length);
    const logits = await this.#run(first, rows, ids, positions, width, lengths, width, lengths);
    this.#lengths.push(...lengths);
    return logits;
  }

  async decode(tokens: readonly number[]): Promise<LogitsRow[]> {
    const rows = this.#lengths.length;
    if (tokens.length !== rows) throw new Error(`a decode step of ${tokens.length} tokens for ${rows} rows`);
    if (rows === 0) return [];
    for (const n of this.#lengths) if (n >= this.#maxContext) throw new Error(`a row is full: ${n} of ${this.#maxContext} tokens`);
    const ids = BigInt64Array.from(tokens, (t) => BigInt(t));
    const positions = BigInt64Array.from(this.#lengths, (n) => BigInt(n));
    const totals = this.#lengths.map((n) => n + 1);
    const logits = await this.#run(0, rows, ids, positions, 1, totals, Math.max(...totals), totals.map(() => 1));
    for (let r = 0; r < rows; r++) this.#lengths[r]!++;
    return logits;
  }

  keepRows(rows: readonly number[]): void {
    const { numKvHeads: H, headDim: D } = this.layout;
    const C = this.#maxContext;
    rows.forEach((from, to) => {
      if (from < to || from >= this.#lengths.length || (to > 0 && from <= rows[to - 1]!)) throw new Error(`keepRows needs ascending rows, got ${rows.join(', ')}`);
      if (from === to) return;
      const used = this.#lengths[from]! * D;
      for (const buffers of [this.#keys, this.#values]) {
        for (const buffer of buffers) {
          for (let h = 0; h < H; h++) {
            const src = (from * H + h) * C * D;
            buffer.copyWithin((to * H + h) * C * D, src, src + used);
          }
        }
      }
    });
    this.#lengths = rows.map((r) => this.#lengths[r]!);
  }

  clear(): void {
    this.#lengths = [];
  }

  /** Bytes the KV buffers hold. */
  get bytes(): number {
    const per = this.layout.dtype === 'float16' ? 2 : 4;
    return this.layout.numLayers * 2 * this.#capacity * this.#rowSize * per;
  }

  // One run over rows first..first+rows−1: their slice of each buffer is both the past and the present.
  async #run(
    first: number,
    rows: number,
    ids: BigInt64Array,
    positions: BigInt64Array,
    width: number,
    totals: readonly number[],
    total: number,
    newTokens: readonly number[],
  ): Promise<LogitsRow[]> {
    const io = this.#io;
    const feeds: Record<string, ort.Tensor> = {
      input_ids: new ort.Tensor('int64', ids, [rows, width]),
      [io.positionIds]: new ort.Tensor('int64', positions, [rows, width]),
      [io.seqlensK]: new ort.Tensor('int32', Int32Array.from(totals, (t) => t - 1), [rows]),
      [io.totalSequenceLength]: new ort.Tensor('int32', Int32Array.of(total), []),
    };
    const fetches: Record<string, ort.Tensor | null> = { logits: null };
    const shape = [rows, this.layout.numKvHeads, this.#maxContext, this.layout.headDim];
    const from = first * this.#rowSize;
    const to = (first + rows) * this.#rowSize;
    for (let l = 0; l < this.layout.numLayers; l++) {
      const key = new ort.Tensor(this.layout.dtype, this.#keys[l]!.subarray(from, to), shape);
      const value = new ort.Tensor(this.layout.dtype, this.#values[l]!.subarray(from, to), shape);
      feeds[name(io.pastKey, l)] = key;
      feeds[name(io.pastValue, l)] = value;
      fetches[name(io.presentKey, l)] = key;
      fetches[name(io.presentValue, l)] = value;
    }
    const result = await this.#session.run(feeds, fetches);
    const logits = result['logits']!;
    const [, seq, vocab] = logits.dims as number[];
    const out: LogitsRow[] = [];
    for (let r = 0; r < rows; r++) {
      const at = (r * seq! + newTokens[r]! - 1) * vocab!;
      out.push(logits.type === 'float16' ? { float16: (logits.data as Uint16Array).subarray(at, at + vocab!) } : (logits.data as Float32Array).subarray(at, at + vocab!));
    }
    return out;
  }

  // Makes room for `rows` rows, doubling; the rows in use are copied over once.
  #grow(rows: number): void {
    if (rows <= this.#capacity) return;
    const capacity = Math.max(rows, this.#capacity * 2);
    const size = capacity * this.#rowSize;
    const used = this.#lengths.length * this.#rowSize;
    const make = (old: KvArray | undefined): KvArray => {
      const next = this.layout.dtype === 'float16' ? new Uint16Array(size) : new Float32Array(size);
      if (old && used > 0) next.set(old.subarray(0, used));
      return next;
    };
    this.#keys = Array.from({ length: this.layout.numLayers }, (_, l) => make(this.#keys[l]));
    this.#values = Array.from({ length: this.layout.numLayers }, (_, l) => make(this.#values[l]));
    this.#capacity = capacity;
  }
}

function name(pattern: string, layer: number): string {
  return pattern.replace('%d', String(layer));
}
