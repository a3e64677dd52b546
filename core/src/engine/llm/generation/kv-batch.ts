import { MessageChannel } from 'node:worker_threads';

/** KV cache element storage: float32, or float16 as raw bits. */
export type KvArray = Float32Array | Uint16Array;

/** The shape facts of a decoder's KV cache. */
export interface KvLayout {
  numLayers: number;
  numKvHeads: number;
  headDim: number;
  dtype: 'float32' | 'float16';
}

/** One layer's key and value tensors, each `[rows, kvHeads, pastLength, headDim]`. */
export interface KvLayer {
  key: KvArray;
  value: KvArray;
}

/** Which row of which batch a row of a new batch comes from. */
export interface RowSource {
  batch: KvBatch;
  row: number;
  /** Keep only the row's first this many tokens (rejected draft tokens dropped); default all. */
  length?: number;
}

/**
 * The KV cache of the running batch in the generic (Hugging Face / Optimum) layout: every row left-padded to a
 * common past length, its real tokens at the end, the padding masked out by `attention_mask`. While the rows stay
 * the same, each step's `present` tensors become the next step's past as they are — no copy; only when sequences
 * join or leave is the cache re-packed ({@link KvBatch.gather}).
 */
export class KvBatch {
  private constructor(
    readonly layout: KvLayout,
    /** Real tokens in the cache, per row. */
    readonly lengths: readonly number[],
    /** Positions per row in the tensors (real tokens plus left padding). */
    readonly pastLength: number,
    readonly layers: readonly KvLayer[],
  ) {}

  /** A batch from tensors a session returned; `lengths[r]` real tokens sit at the end of row r. */
  static fromTensors(
    layout: KvLayout,
    lengths: readonly number[],
    pastLength: number,
    layers: readonly KvLayer[],
  ): KvBatch {
    const expected = lengths.length * layout.numKvHeads * pastLength * layout.headDim;
    for (const [i, l] of layers.entries()) {
      if (l.key.length !== expected || l.value.length !== expected) {
        throw new Error(
          `layer ${i}: KV tensors hold ${l.key.length}/${l.value.length} values, expected ${expected} for ${lengths.length} rows × ${pastLength} positions`,
        );
      }
    }
    for (const n of lengths)
      if (n > pastLength) throw new Error(`a row holds ${n} tokens but the cache is ${pastLength} long`);
    return new KvBatch(layout, [...lengths], pastLength, layers);
  }

  /** A cache with no positions for `rows` rows (the past of a prefill). */
  static empty(layout: KvLayout, rows: number): KvBatch {
    const layers = Array.from({ length: layout.numLayers }, () => ({
      key: allocate(layout, 0),
      value: allocate(layout, 0),
    }));
    return new KvBatch(layout, new Array<number>(rows).fill(0), 0, layers);
  }

  /**
   * A new batch holding the given rows, in that order, left-padded to the longest of them. Rows may come from
   * several batches (the running batch and a freshly prefilled one) or be a subset of one (sequences left), and may
   * be cut short (a verify step's rejected draft tokens).
   */
  static gather(layout: KvLayout, sources: readonly RowSource[]): KvBatch {
    const lengths = sources.map((s) => {
      const held = s.batch.lengths[s.row]!;
      if (s.length !== undefined && (s.length < 0 || s.length > held))
        throw new Error(`cannot keep ${s.length} tokens of a row that holds ${held}`);
      return s.length ?? held;
    });
    const past = Math.max(0, ...lengths);
    const { numKvHeads: H, headDim: D } = layout;
    const rowSize = H * past * D;
    const layers: KvLayer[] = [];
    for (let l = 0; l < layout.numLayers; l++) {
      const key = allocate(layout, sources.length * rowSize);
      const value = allocate(layout, sources.length * rowSize);
      sources.forEach((s, r) => {
        const len = lengths[r]!;
        if (len === 0) return;
        const src = s.batch.layers[l]!;
        const srcPast = s.batch.pastLength;
        for (let h = 0; h < H; h++) {
          const from = ((s.row * H + h) * srcPast + (srcPast - s.batch.lengths[s.row]!)) * D;
          const to = ((r * H + h) * past + (past - len)) * D;
          key.set(src.key.subarray(from, from + len * D), to);
          value.set(src.value.subarray(from, from + len * D), to);
        }
      });
      layers.push({ key, value });
    }
    return new KvBatch(layout, lengths, past, layers);
  }

  /** Rows in the batch. */
  get rows(): number {
    return this.lengths.length;
  }

  /** The tensor shape of one layer's key or value. */
  get shape(): [number, number, number, number] {
    return [this.rows, this.layout.numKvHeads, this.pastLength, this.layout.headDim];
  }

  /**
   * The `attention_mask` for a step that appends `newTokens` positions to every row: `[rows, past + newTokens]`,
   * 0 over each row's left padding, 1 over its real tokens and the new ones.
   */
  attentionMask(newTokens: number): BigInt64Array {
    const width = this.pastLength + newTokens;
    const mask = new BigInt64Array(this.rows * width);
    this.lengths.forEach((len, r) => mask.fill(1n, r * width + (this.pastLength - len), (r + 1) * width));
    return mask;
  }

  /** The cache after a step that appended `newTokens` to every row: the step's `present` tensors, as they are. */
  advance(presents: readonly KvLayer[], newTokens: number): KvBatch {
    return KvBatch.fromTensors(
      this.layout,
      this.lengths.map((n) => n + newTokens),
      this.pastLength + newTokens,
      presents,
    );
  }

  /**
   * Frees the tensors' memory now; the batch must not be used again. Each step's presents are new memory the size of
   * the whole cache (onnxruntime-node copies every output), so a cache replaced at every step, left to the garbage
   * collector, makes it run several times a second, on helper threads that compete with the server's main thread.
   */
  release(): void {
    freeNow(this.layers.flatMap((l) => [l.key.buffer as ArrayBuffer, l.value.buffer as ArrayBuffer]));
  }

  /** Bytes the tensors hold (padding included). */
  get bytes(): number {
    const per = this.layout.dtype === 'float16' ? 2 : 4;
    return this.layers.length * 2 * this.rows * this.layout.numKvHeads * this.pastLength * this.layout.headDim * per;
  }
}

// Memory goes back without a garbage collection when its ArrayBuffer is detached and nothing else holds it: here by
// transferring it into a channel closed at once (its queued message, and with it the memory, is dropped when the
// channel is, on the next turn of the event loop). ArrayBuffer.prototype.transfer would do it directly, from Node 22.
function freeNow(buffers: ArrayBuffer[]): void {
  const owned = [...new Set(buffers)].filter((b) => b.byteLength > 0);
  if (owned.length === 0) return;
  const { port1, port2 } = new MessageChannel();
  port1.postMessage(null, owned);
  port1.close();
  port2.close();
}

function allocate(layout: KvLayout, length: number): KvArray {
  return layout.dtype === 'float16' ? new Uint16Array(length) : new Float32Array(length);
}
