import * as ort from 'onnxruntime-node';
import type { ContribIo, DecoderConfig } from '@nucleus/sdk/llm';
import { kvLayoutOf } from './decoder-session.js';
import type { KvArray, KvLayout } from './kv-batch.js';
import { allocateBlock } from '../prefix-cache/kv-blocks.js';
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
  /**
   * Prefills prompts into new rows after the running ones; the last position's logits of each. With `prefixes`, a
   * prompt whose entry is set starts from that cached KV (its prompt is then only the tokens after the prefix).
   */
  admit(
    prompts: readonly (readonly number[])[],
    prefixes?: readonly (CachedPrefix | undefined)[],
  ): Promise<LogitsRow[]>;
  /**
   * Appends one token to every row, or with `first` to rows `first .. first + tokens.length − 1` only (the others
   * keep their length). A step that fails leaves every row as it was, so it can be tried again, also over fewer rows.
   */
  decode(tokens: readonly number[], first?: number): Promise<LogitsRow[]>;
  /**
   * Appends several tokens to one row (the last token and its drafts, speculative decoding) and gives the logits of
   * every new position. Runners without it do not speculate.
   */
  verify?(row: number, tokens: readonly number[]): Promise<LogitsRow[]>;
  /** Cuts a row back to its first `length` tokens (a verify step's rejected drafts). */
  truncate?(row: number, length: number): void;
  /** Keeps these rows (ascending), moved down to rows 0..n−1 in that order. */
  keepRows(rows: readonly number[]): void;
  /** A prefix-cache block: tokens `first .. first + blockTokens` of row `row`, every layer (see `kv-blocks.ts`). */
  blockAt(row: number, first: number, blockTokens: number): KvArray;
}

/** KV of a prompt's first tokens, as prefix-cache blocks of `blockTokens` tokens each, in order. */
export interface CachedPrefix {
  blocks: readonly KvArray[];
  blockTokens: number;
}

/** Whether a runner keeps the KV cache itself. */
export function isResidentKvRunner(runner: object): runner is ResidentKvRunner {
  return (runner as { resident?: unknown }).resident === true;
}

/** Positions per row in the KV buffers grow and shrink in steps of this many (see {@link ContribDecoderSession}). */
export const CONTRIB_SPAN_STEP = 32;

/** KV buffers up to this size stay allocated while no row runs (the next request reuses them); larger ones go. */
const IDLE_KV_BYTES = 16 * 2 ** 20;

/**
 * Runs a contrib-style graph (GroupQueryAttention over right-padded rows, see `ContribIo`) with one pre-allocated
 * buffer per layer and part, `[rows, kvHeads, span, headDim]`. The running rows' slice of it is fed as the past, which
 * onnxruntime-node hands to ORT without copying; a row that leaves costs one move of the rows after it.
 *
 * Where the graph outputs each step's new K and V (`ContribIo.newKey`, our own graphs), only those are fetched and
 * written after each row's tokens, so a step moves a few KiB however long the rows are. onnxruntime-node hands every
 * fetched output back as a fresh copy, the pre-allocated ones included: fetching the present (the only way with
 * other graphs, bound to the same buffer so ORT writes in place) copies the whole slice into new memory at every
 * step, and the garbage collection of that memory then competes with the server for the CPU.
 *
 * `span` (positions per row) is not the model's context: it follows the longest running row, rounded up to
 * {@link CONTRIB_SPAN_STEP} and capped at the context, growing when a row reaches it and halving when the rows that
 * stay need half, so a present-fetching step copies about what a generic-graph step copies and attention reads each
 * row's own length only.
 *
 * Prompts of several rows start from an empty cache in one step; a prompt that starts from cached prefix blocks is
 * written after its prefix in a step of its own (ORT takes a multi-token step over a non-empty cache only at batch 1).
 */
export class ContribDecoderSession implements ResidentKvRunner {
  readonly resident = true;
  readonly layout: KvLayout;
  readonly #session: ort.InferenceSession;
  readonly #io: ContribIo;
  readonly #maxContext: number;
  readonly #padId: number;
  /** Whether steps fetch only the new K and V (see the class comment). */
  readonly #appends: boolean;
  #capacity = 0;
  #span = 0;
  /** The running rows' buffers: views of the stores below, laid out for `#capacity` rows × `#span` positions. */
  #keys: KvArray[] = [];
  #values: KvArray[] = [];
  /** The memory under `#keys` and `#values`, per layer; it may hold more than they use. */
  #keyStore: KvArray[] = [];
  #valueStore: KvArray[] = [];
  #lengths: number[] = [];

  constructor(session: ort.InferenceSession, config: DecoderConfig, options: { initialRows?: number } = {}) {
    if (config.graphStyle !== 'contrib' || !config.contribIo)
      throw new Error('ContribDecoderSession needs a contrib-style decoder (contribIo)');
    this.#session = session;
    this.#io = config.contribIo;
    this.layout = kvLayoutOf(config);
    this.#maxContext = config.maxContext;
    this.#padId = config.padTokenId ?? config.eosTokenIds[0] ?? 0;
    const inputs = new Set(session.inputNames);
    for (const name of ['input_ids', this.#io.positionIds, this.#io.seqlensK, this.#io.totalSequenceLength]) {
      if (!inputs.has(name))
        throw new Error(`the contrib decoder has no '${name}' input (inputs: ${session.inputNames.join(', ')})`);
    }
    this.#appends =
      this.#io.newKey !== undefined &&
      this.#io.newValue !== undefined &&
      session.outputNames.includes(name(this.#io.newKey, 0));
    this.#reshape(Math.max(1, options.initialRows ?? 1), this.#spanFor(1));
  }

  get lengths(): readonly number[] {
    return this.#lengths;
  }

  /** Rows the buffers hold now (they grow, doubling, as rows join). */
  get capacity(): number {
    return this.#capacity;
  }

  /** Whether steps fetch only the new K and V (graphs that output them) rather than the whole present. */
  get fetchesNewKvOnly(): boolean {
    return this.#appends;
  }

  /** Positions per row the buffers hold now. */
  get span(): number {
    return this.#span;
  }

  async admit(
    prompts: readonly (readonly number[])[],
    prefixes: readonly (CachedPrefix | undefined)[] = [],
  ): Promise<LogitsRow[]> {
    const cached = prompts.map((_, i) => (prefixes[i] ? prefixes[i].blocks.length * prefixes[i].blockTokens : 0));
    prompts.forEach((p, i) => {
      if (p.length === 0) throw new Error('an empty prompt cannot be prefilled');
      if (cached[i]! + p.length > this.#maxContext)
        throw new Error(
          `a prompt of ${cached[i]! + p.length} tokens does not fit the ${this.#maxContext}-token context`,
        );
    });
    const first = this.#lengths.length;
    const out: LogitsRow[] = [];
    try {
      for (let i = 0; i < prompts.length; ) {
        if (cached[i]! > 0) {
          out.push(await this.#admitAfterPrefix(prompts[i]!, prefixes[i]!));
          i++;
          continue;
        }
        let end = i + 1;
        while (end < prompts.length && cached[end] === 0) end++;
        out.push(...(await this.#admitFromEmpty(prompts.slice(i, end))));
        i = end;
      }
    } catch (err) {
      this.#lengths.length = first;
      throw err;
    }
    return out;
  }

  // Rows first..first+rows−1 are the slice of the buffers the step runs over; the rows outside it are not read.
  async decode(tokens: readonly number[], first?: number): Promise<LogitsRow[]> {
    const rows = tokens.length;
    const start = first ?? 0;
    if (first === undefined ? rows !== this.#lengths.length : start < 0 || start + rows > this.#lengths.length) {
      throw new Error(`a decode step of ${rows} tokens from row ${start} for ${this.#lengths.length} rows`);
    }
    if (rows === 0) return [];
    const lengths = this.#lengths.slice(start, start + rows);
    for (const n of lengths)
      if (n >= this.#maxContext) throw new Error(`a row is full: ${n} of ${this.#maxContext} tokens`);
    const totals = lengths.map((n) => n + 1);
    const total = Math.max(...totals);
    this.#fit(this.#lengths.length, total);
    const ids = BigInt64Array.from(tokens, (t) => BigInt(t));
    const positions = BigInt64Array.from(lengths, (n) => BigInt(n));
    const logits = await this.#run(
      start,
      rows,
      ids,
      positions,
      1,
      totals,
      total,
      totals.map(() => 1),
    );
    for (let r = start; r < start + rows; r++) this.#lengths[r]!++;
    return logits;
  }

  // A multi-token step over a non-empty cache runs at batch 1 in ORT's GroupQueryAttention, so a verify step is one
  // row's own run; its rejected tokens stay in the buffer past the row's length, where nothing reads them.
  async verify(row: number, tokens: readonly number[]): Promise<LogitsRow[]> {
    const len = this.#lengths[row];
    if (len === undefined) throw new Error(`row ${row} is not running`);
    if (tokens.length === 0) throw new Error('a verify step needs at least one token');
    const total = len + tokens.length;
    if (total > this.#maxContext)
      throw new Error(
        `a verify step of ${tokens.length} tokens does not fit row ${row} (${len} of ${this.#maxContext} tokens)`,
      );
    this.#fit(this.#lengths.length, total);
    const ids = BigInt64Array.from(tokens, (t) => BigInt(t));
    const positions = BigInt64Array.from(tokens, (_, i) => BigInt(len + i));
    const logits = await this.#run(row, 1, ids, positions, tokens.length, [total], total, [tokens.length], true);
    this.#lengths[row] = total;
    return logits;
  }

  truncate(row: number, length: number): void {
    const len = this.#lengths[row];
    if (len === undefined || length < 0 || length > len)
      throw new Error(`cannot cut row ${row} (${len ?? 0} tokens) to ${length}`);
    this.#lengths[row] = length;
  }

  keepRows(rows: readonly number[]): void {
    const { numKvHeads: H, headDim: D } = this.layout;
    const S = this.#span;
    rows.forEach((from, to) => {
      if (from < to || from >= this.#lengths.length || (to > 0 && from <= rows[to - 1]!))
        throw new Error(`keepRows needs ascending rows, got ${rows.join(', ')}`);
      if (from === to) return;
      const used = this.#lengths[from]! * D;
      for (const buffers of [this.#keys, this.#values]) {
        for (const buffer of buffers) {
          for (let h = 0; h < H; h++) {
            const src = (from * H + h) * S * D;
            buffer.copyWithin((to * H + h) * S * D, src, src + used);
          }
        }
      }
    });
    this.#lengths = rows.map((r) => this.#lengths[r]!);
    // The longest row left: when the next step needs half the span or less, the rows are re-laid tighter.
    const wanted = this.#spanFor(Math.max(1, ...this.#lengths.map((n) => n + 1)));
    if (wanted * 2 <= this.#span) this.#reshape(this.#capacity, wanted);
    this.#releaseIfIdle();
  }

  blockAt(row: number, first: number, blockTokens: number): KvArray {
    const { numKvHeads: H, headDim: D } = this.layout;
    const len = this.#lengths[row];
    if (len === undefined || first < 0 || first + blockTokens > len)
      throw new Error(`tokens ${first}..${first + blockTokens} are outside row ${row}, which holds ${len ?? 0}`);
    const block = allocateBlock(this.layout, blockTokens);
    const S = this.#span;
    for (let l = 0; l < this.layout.numLayers; l++) {
      [this.#keys[l]!, this.#values[l]!].forEach((src, kind) => {
        for (let h = 0; h < H; h++) {
          const from = ((row * H + h) * S + first) * D;
          block.set(src.subarray(from, from + blockTokens * D), ((l * 2 + kind) * H + h) * blockTokens * D);
        }
      });
    }
    return block;
  }

  /** Bytes the KV buffers hold. */
  get bytes(): number {
    let bytes = 0;
    for (const store of [...this.#keyStore, ...this.#valueStore]) bytes += store.byteLength;
    return bytes;
  }

  // Prompts from an empty cache, right-padded into one step: row r's tokens at 0..len−1; the padding writes KV past
  // the row's length, which no step reads before a decode overwrites it.
  async #admitFromEmpty(prompts: readonly (readonly number[])[]): Promise<LogitsRow[]> {
    const first = this.#lengths.length;
    const rows = prompts.length;
    const width = Math.max(...prompts.map((p) => p.length));
    this.#fit(first + rows, width);
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

  // One prompt after its cached prefix: the prefix blocks are copied into a new row, then the rest runs over them.
  async #admitAfterPrefix(prompt: readonly number[], prefix: CachedPrefix): Promise<LogitsRow> {
    const { numKvHeads: H, headDim: D } = this.layout;
    const row = this.#lengths.length;
    const B = prefix.blockTokens;
    const cached = prefix.blocks.length * B;
    const total = cached + prompt.length;
    this.#fit(row + 1, total);
    const S = this.#span;
    prefix.blocks.forEach((block, b) => {
      for (let l = 0; l < this.layout.numLayers; l++) {
        [this.#keys[l]!, this.#values[l]!].forEach((dst, kind) => {
          for (let h = 0; h < H; h++) {
            const from = ((l * 2 + kind) * H + h) * B * D;
            dst.set(block.subarray(from, from + B * D), ((row * H + h) * S + b * B) * D);
          }
        });
      }
    });
    const ids = BigInt64Array.from(prompt, (t) => BigInt(t));
    const positions = BigInt64Array.from(prompt, (_, i) => BigInt(cached + i));
    const [logits] = await this.#run(row, 1, ids, positions, prompt.length, [total], total, [prompt.length]);
    this.#lengths.push(total);
    return logits!;
  }

  // One run over rows first..first+rows−1: their slice of each buffer is the past, and either the present too or the
  // place the step's new K and V are written to after the run.
  async #run(
    first: number,
    rows: number,
    ids: BigInt64Array,
    positions: BigInt64Array,
    width: number,
    totals: readonly number[],
    total: number,
    newTokens: readonly number[],
    everyPosition = false,
  ): Promise<LogitsRow[]> {
    const io = this.#io;
    const feeds: Record<string, ort.Tensor> = {
      input_ids: new ort.Tensor('int64', ids, [rows, width]),
      [io.positionIds]: new ort.Tensor('int64', positions, [rows, width]),
      [io.seqlensK]: new ort.Tensor(
        'int32',
        Int32Array.from(totals, (t) => t - 1),
        [rows],
      ),
      [io.totalSequenceLength]: new ort.Tensor('int32', Int32Array.of(total), []),
    };
    const fetches: Record<string, ort.Tensor | null> = { logits: null };
    const { numKvHeads: H, headDim: D } = this.layout;
    const shape = [rows, H, this.#span, D];
    const rowSize = H * this.#span * D;
    const from = first * rowSize;
    const to = (first + rows) * rowSize;
    for (let l = 0; l < this.layout.numLayers; l++) {
      const key = new ort.Tensor(this.layout.dtype, this.#keys[l]!.subarray(from, to), shape);
      const value = new ort.Tensor(this.layout.dtype, this.#values[l]!.subarray(from, to), shape);
      feeds[name(io.pastKey, l)] = key;
      feeds[name(io.pastValue, l)] = value;
      if (this.#appends) {
        fetches[name(io.newKey!, l)] = null;
        fetches[name(io.newValue!, l)] = null;
      } else {
        fetches[name(io.presentKey, l)] = key;
        fetches[name(io.presentValue, l)] = value;
      }
    }
    const result = await this.#session.run(feeds, fetches);
    if (this.#appends) this.#append(result, first, rows, width, totals, newTokens);
    const logits = result.logits!;
    const [, seq, vocab] = logits.dims as number[];
    const out: LogitsRow[] = [];
    for (let r = 0; r < rows; r++) {
      for (let p = everyPosition ? 0 : newTokens[r]! - 1; p < newTokens[r]!; p++) {
        const at = (r * seq! + p) * vocab!;
        out.push(
          logits.type === 'float16'
            ? { float16: (logits.data as Uint16Array).subarray(at, at + vocab!) }
            : (logits.data as Float32Array).subarray(at, at + vocab!),
        );
      }
    }
    return out;
  }

  // Row r's new tokens, the first newTokens[r] of the step's `width`, go after its past: positions totals[r] −
  // newTokens[r] onward. The outputs are [rows, width, kvHeads × headDim]; the buffers [rows, kvHeads, span, headDim].
  #append(
    result: ort.InferenceSession.OnnxValueMapType,
    first: number,
    rows: number,
    width: number,
    totals: readonly number[],
    newTokens: readonly number[],
  ): void {
    const { numKvHeads: H, headDim: D, numLayers } = this.layout;
    const S = this.#span;
    for (let l = 0; l < numLayers; l++) {
      for (const [pattern, buffer] of [
        [this.#io.newKey!, this.#keys[l]!],
        [this.#io.newValue!, this.#values[l]!],
      ] as const) {
        const fresh = result[name(pattern, l)]!.data as KvArray;
        for (let r = 0; r < rows; r++) {
          const n = newTokens[r]!;
          const at = totals[r]! - n;
          for (let h = 0; h < H; h++) {
            for (let t = 0; t < n; t++) {
              const src = ((r * width + t) * H + h) * D;
              const dst = (((first + r) * H + h) * S + at + t) * D;
              for (let d = 0; d < D; d++) buffer[dst + d] = fresh[src + d]!;
            }
          }
        }
      }
    }
  }

  // The span that holds `positions` positions per row.
  #spanFor(positions: number): number {
    return Math.min(this.#maxContext, Math.ceil(positions / CONTRIB_SPAN_STEP) * CONTRIB_SPAN_STEP);
  }

  // Makes room for `rows` rows of `positions` positions each: rows grow doubling, the span to the next step.
  #fit(rows: number, positions: number): void {
    const span = positions > this.#span ? this.#spanFor(positions) : this.#span;
    this.#reshape(rows <= this.#capacity ? this.#capacity : Math.max(rows, this.#capacity * 2), span);
  }

  // Lays the buffers out for `capacity` rows × `span` positions when either changes; the tokens of the rows in use
  // move over. The memory under the buffers is kept and laid out again in place while it is large enough: a span that
  // grows every CONTRIB_SPAN_STEP tokens would otherwise allocate (and zero) the whole batch's KV again each time, for
  // one row as for all of them, and leave it all to the garbage collector. New memory, when needed, is allocated for
  // the next power-of-two multiple of the step, so a growing row causes few allocations.
  #reshape(capacity: number, span: number): void {
    if (capacity === this.#capacity && span === this.#span) return;
    const { numKvHeads: H, headDim: D } = this.layout;
    const size = capacity * H * span * D;
    const old = this.#span;
    const rows = this.#lengths;
    if (this.#keyStore.length === 0 || this.#keyStore[0]!.length < size) {
      const room = capacity * H * Math.max(span, this.#roomySpan(span)) * D;
      const allocate = (): KvArray =>
        this.layout.dtype === 'float16' ? new Uint16Array(room) : new Float32Array(room);
      // All allocated before any is swapped in: a failed allocation leaves the rows as they were.
      const keys = Array.from({ length: this.layout.numLayers }, allocate);
      const values = Array.from({ length: this.layout.numLayers }, allocate);
      const move = (from: KvArray | undefined, next: KvArray): void => {
        if (!from) return;
        if (old === span) return next.set(from.subarray(0, rows.length * H * span * D));
        rows.forEach((n, r) => {
          for (let h = 0; h < H; h++) {
            const src = (r * H + h) * old * D;
            next.set(from.subarray(src, src + n * D), (r * H + h) * span * D);
          }
        });
      };
      keys.forEach((k, l) => move(this.#keys[l], k));
      values.forEach((v, l) => move(this.#values[l], v));
      this.#keyStore = keys;
      this.#valueStore = values;
    } else if (old !== span) {
      // In place: a growing span moves the last (row, head) first, a shrinking one the first, so no part is
      // overwritten before it has moved.
      const blocks = rows.length * H;
      for (const store of [...this.#keyStore, ...this.#valueStore]) {
        for (let i = 0; i < blocks; i++) {
          const b = span > old ? blocks - 1 - i : i;
          const src = b * old * D;
          store.copyWithin(b * span * D, src, src + rows[Math.floor(b / H)]! * D);
        }
      }
    }
    this.#keys = this.#keyStore.map((store) => store.subarray(0, size));
    this.#values = this.#valueStore.map((store) => store.subarray(0, size));
    this.#capacity = capacity;
    this.#span = span;
  }

  // The span new memory is allocated for: the next power-of-two multiple of the step, within the context.
  #roomySpan(span: number): number {
    let room = CONTRIB_SPAN_STEP;
    while (room < span) room *= 2;
    return Math.min(this.#maxContext, room);
  }

  // Lets the memory under the buffers go when nothing runs and it holds more than IDLE_KV_BYTES: the next rows start
  // in buffers of their own size.
  #releaseIfIdle(): void {
    if (this.#lengths.length > 0 || this.bytes <= IDLE_KV_BYTES) return;
    this.#keyStore = [];
    this.#valueStore = [];
    const capacity = this.#capacity;
    this.#capacity = 0;
    this.#reshape(capacity, this.#spanFor(1));
  }
}

// Input and output names by pattern and layer, built once: a step looks up four per layer.
const names = new Map<string, string[]>();

function name(pattern: string, layer: number): string {
  let byLayer = names.get(pattern);
  if (!byLayer) names.set(pattern, (byLayer = []));
  return (byLayer[layer] ??= pattern.replace('%d', String(layer)));
}
