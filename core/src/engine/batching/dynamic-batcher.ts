import { NucleusError, unavailable, type Logger, type Tensor } from '@nucleus/sdk';
import type { BatchAssembler, BatchStats } from './batch-assembler.js';

/** Bytes a batch assembly copies before it lets the event loop run other work. */
const ASSEMBLY_SLICE_BYTES = 4 * 1024 * 1024;

/**
 * Output bytes of a batch answered in one turn of the event loop before the rest waits for the next turn: answers
 * of small outputs (a class, a score) go out together, large ones (images, embeddings of long batches) in turns.
 */
const ANSWER_TURN_BYTES = 64 * 1024;
/** What an answer counts for against that budget however small its outputs: its hooks and its write (16 a turn). */
const ANSWER_MIN_BYTES = 4 * 1024;

/** The knobs of a batcher, read afresh for every batch so runtime config changes apply at once. */
export interface BatchSettings {
  /** Most rows (first-dimension entries) in one batch; 1 turns batching off. */
  maxBatchSize: number;
  /** How long the oldest request may wait for others before its batch goes anyway. */
  maxQueueDelayMs: number;
  /** Batch sizes (in rows) sent at once as soon as the queue can form one; the largest formable wins. */
  preferredBatchSizes: readonly number[];
  /** Requests queued beyond this are refused with 503 (`queue.highWatermark`). */
  maxQueued: number;
  /** Once full, the queue admits again only below this many (`queue.lowWatermark`), so it does not flap. Default: `maxQueued`. */
  reopenBelow?: number;
  /** A request that waited longer than this is failed with 408 instead of run, as the generation queue does. */
  queueTimeoutMs: number;
}

/** Options of a {@link DynamicBatcher}. */
export interface DynamicBatcherOptions {
  /** `model@version`, for logs and errors. */
  label: string;
  settings: () => BatchSettings;
  assembler: BatchAssembler;
  /** Runs one batch; the outputs are split back per request. */
  run: (inputs: Record<string, Tensor>) => Promise<{ outputs: Record<string, Tensor>; runMs: number }>;
  /** Batches that may run at once (one per worker). */
  concurrency: () => number;
  logger?: Logger;
  /** Told after every batch (for the `batch.executed` event). */
  onBatch?(batch: { size: number; paddingRatio: number; durationMs: number; requestIds: string[] }): void;
  /** Told whenever the number of queued requests changes (for the `queue.depth` event). */
  onDepth?(depth: number): void;
}

/** One request's outputs and what its batch was like. */
export interface BatchedResult {
  outputs: Record<string, Tensor>;
  /** Requests in the batch it ran in. */
  batchSize: number;
  /** From submission to dispatch. */
  queueMs: number;
  /** From dispatch to the split outputs (worker run and transfer). */
  computeMs: number;
}

/** Per-request options of {@link DynamicBatcher.submit}. */
export interface SubmitOptions {
  signal?: AbortSignal;
  requestId?: string;
  /** Queued behind every other request (offline batch jobs), so interactive ones never wait behind it in the queue. */
  low?: boolean;
}

interface Item {
  inputs: Record<string, Tensor>;
  rows: number;
  low: boolean;
  enqueuedAt: number;
  requestId?: string;
  resolve(result: BatchedResult): void;
  reject(err: Error): void;
  /** Called as the item leaves the queue (dispatched, expired, drained). */
  detach(): void;
  /** In the queue: not yet dispatched, expired, cancelled or drained. */
  queued: boolean;
}

/** Counters for `/status`. */
export interface BatcherStats {
  queued: number;
  inFlight: number;
  batches: number;
  batchedRequests: number;
}

/** The error a request gets when its signal aborts before its batch was dispatched. */
export function cancelledError(label: string): NucleusError {
  return new NucleusError(499, 'request_cancelled', `the request to ${label} was cancelled before it ran`);
}

/**
 * Forms batches from queued requests, with Triton's dynamic batcher's rules: when the queue can form a preferred
 * batch size, the largest such batch goes at once; otherwise a batch goes, whole, when it is full or when its
 * oldest request has waited `maxQueueDelayMs`. Batches go only while a worker is free, so under load requests
 * gather while the model is busy. Requests that cannot share a batch (different lengths without padding) wait for
 * the next one, in arrival order. A request whose signal aborts before dispatch leaves the queue.
 */
export class DynamicBatcher {
  readonly #queue: Item[] = [];
  #inFlight = 0;
  #timer: NodeJS.Timeout | undefined;
  #timerAt = 0;
  #closed = false;
  #batches = 0;
  #batchedRequests = 0;
  #shedding = false;
  #toldDepth = -1;
  readonly #idle = new Set<() => void>();

  constructor(private readonly options: DynamicBatcherOptions) {}

  /** Queues a validated request of `rows` rows; resolves with its own outputs. */
  submit(inputs: Record<string, Tensor>, rows: number, options: SubmitOptions = {}): Promise<BatchedResult> {
    const { signal, requestId, low = false } = options;
    if (this.#closed) return Promise.reject(unavailable('model_unloading', `${this.options.label} is being unloaded`));
    if (signal?.aborted) return Promise.reject(cancelledError(this.options.label));
    const settings = this.options.settings();
    // Hysteresis, as in the AdmissionQueue: full at the high watermark, open again below the low one.
    const reopenBelow = Math.min(settings.reopenBelow ?? settings.maxQueued, settings.maxQueued);
    if (this.#queue.length >= settings.maxQueued) this.#shedding = true;
    else if (this.#queue.length < reopenBelow) this.#shedding = false;
    if (this.#shedding) {
      return Promise.reject(
        unavailable(
          'queue_full',
          `${this.options.label} has ${this.#queue.length} requests queued (queue.highWatermark); retry later`,
          1,
        ),
      );
    }
    return new Promise((resolve, reject) => {
      const item: Item = {
        inputs,
        rows,
        low,
        enqueuedAt: performance.now(),
        resolve,
        reject,
        detach: () => void (item.queued = false),
        queued: true,
        ...(requestId !== undefined && { requestId }),
      };
      // Others go ahead of the low ones queued (the head is what the next batch is formed around).
      const firstLow = low ? -1 : this.#queue.findIndex((q) => q.low);
      if (firstLow < 0) this.#queue.push(item);
      else this.#queue.splice(firstLow, 0, item);
      this.#pump();
      // A request dispatched at once (a free worker, nothing to wait for) has nothing left to cancel in the queue:
      // only one that waits listens to its signal, and the depth is told once, after the pump, as it is now.
      if (signal && item.queued) {
        const onAbort = (): void => {
          const at = this.#queue.indexOf(item);
          if (at < 0) return;
          this.#queue.splice(at, 1);
          item.queued = false;
          this.#depthChanged();
          reject(cancelledError(this.options.label));
          this.#notifyIdle();
        };
        signal.addEventListener('abort', onAbort, { once: true });
        item.detach = () => {
          item.queued = false;
          signal.removeEventListener('abort', onAbort);
        };
      }
      this.#depthChanged();
    });
  }

  /** Queue and batch counters. */
  stats(): BatcherStats {
    return {
      queued: this.#queue.length,
      inFlight: this.#inFlight,
      batches: this.#batches,
      batchedRequests: this.#batchedRequests,
    };
  }

  /** Stops taking requests, sends what is queued without waiting for the delay, and waits (up to `timeoutMs`) until all have run. */
  async drain(timeoutMs: number): Promise<void> {
    this.#closed = true;
    this.#pump();
    if (this.#queue.length === 0 && this.#inFlight === 0) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(done, timeoutMs);
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      this.#idle.add(done);
    });
    clearTimeout(this.#timer);
    const left = this.#queue.splice(0);
    this.#depthChanged();
    for (const item of left) {
      item.detach();
      item.reject(unavailable('model_unloading', `${this.options.label} was unloaded before the request ran`));
    }
  }

  #pump(): void {
    const settings = this.options.settings();
    while (this.#queue.length > 0 && this.#inFlight < Math.max(1, this.options.concurrency())) {
      const now = performance.now();
      this.#expire(now, settings);
      if (this.#queue.length === 0) break;
      const { items, rows } = this.#candidate(settings);
      // Triton's rule: a batch of a preferred size goes at once (the largest one the queue can form); otherwise
      // the batch waits until it is full or its oldest request has waited the delay.
      const preferred = this.#preferred(items, settings);
      if (preferred) {
        this.#dispatch(preferred);
        continue;
      }
      const waited = now - this.#queue[0]!.enqueuedAt;
      const full = rows >= settings.maxBatchSize || items.length < this.#compatibleQueued(items);
      if (!full && !this.#closed && waited < settings.maxQueueDelayMs) {
        this.#arm(this.#queue[0]!.enqueuedAt + settings.maxQueueDelayMs - now);
        return;
      }
      // No preferred size fits: everything that may go together goes.
      this.#dispatch(items);
    }
  }

  // Requests that may join the oldest one, in order, up to the row limit; a request larger than the limit goes alone.
  #candidate(settings: BatchSettings): { items: Item[]; rows: number } {
    const head = this.#queue[0]!;
    const items = [head];
    let rows = head.rows;
    if (settings.maxBatchSize <= 1) return { items, rows };
    for (let i = 1; i < this.#queue.length && rows < settings.maxBatchSize; i++) {
      const item = this.#queue[i]!;
      if (rows + item.rows > settings.maxBatchSize) continue;
      if (!this.options.assembler.canJoin(head.inputs, item.inputs)) continue;
      items.push(item);
      rows += item.rows;
    }
    return { items, rows };
  }

  // How many queued requests could join the head: when the candidate already holds fewer (rows ran out), it is full.
  #compatibleQueued(items: Item[]): number {
    if (items.length === this.#queue.length) return items.length;
    let n = 0;
    for (const item of this.#queue)
      if (item === items[0] || this.options.assembler.canJoin(items[0]!.inputs, item.inputs)) n++;
    return n;
  }

  // The longest prefix of the candidate whose rows make a preferred size, or undefined when none does.
  #preferred(items: Item[], settings: BatchSettings): Item[] | undefined {
    if (settings.preferredBatchSizes.length === 0) return undefined;
    let rows = 0;
    let end = -1;
    for (let i = 0; i < items.length; i++) {
      rows += items[i]!.rows;
      if (settings.preferredBatchSizes.includes(rows)) end = i;
    }
    return end < 0 ? undefined : items.slice(0, end + 1);
  }

  #expire(now: number, settings: BatchSettings): void {
    for (let i = this.#queue.length - 1; i >= 0; i--) {
      const item = this.#queue[i]!;
      if (now - item.enqueuedAt <= settings.queueTimeoutMs) continue;
      this.#queue.splice(i, 1);
      this.#depthChanged();
      item.detach();
      item.reject(
        new NucleusError(
          408,
          'queue_timeout',
          `the request waited more than ${settings.queueTimeoutMs} ms (queue.timeoutMs) for ${this.options.label}; retry later`,
        ),
      );
    }
  }

  // Tells the queue's depth when it differs from the one told last (the first time always), so a request queued and
  // dispatched in one go tells nothing.
  #depthChanged(): void {
    const depth = this.#queue.length;
    if (depth === this.#toldDepth) return;
    this.#toldDepth = depth;
    this.options.onDepth?.(depth);
  }

  #arm(delayMs: number): void {
    const at = performance.now() + delayMs;
    if (this.#timer && this.#timerAt <= at) return;
    clearTimeout(this.#timer);
    this.#timerAt = at;
    this.#timer = setTimeout(
      () => {
        this.#timer = undefined;
        this.#pump();
      },
      Math.max(0, delayMs),
    );
  }

  #dispatch(items: Item[]): void {
    for (const item of items) {
      this.#queue.splice(this.#queue.indexOf(item), 1);
      item.detach();
    }
    this.#depthChanged();
    this.#inFlight++;
    this.#batches++;
    this.#batchedRequests += items.length;
    void this.#runBatch(items).finally(() => {
      this.#inFlight--;
      this.#pump();
      this.#notifyIdle();
    });
  }

  async #runBatch(items: Item[]): Promise<void> {
    const { assembler, logger } = this.options;
    const dispatched = performance.now();
    try {
      const { inputs, layout, stats } = await assembler.assembleInSlices(
        items.map((i) => i.inputs),
        ASSEMBLY_SLICE_BYTES,
      );
      const { outputs, runMs } = await this.options.run(inputs);
      const parts = items.length === 1 ? [outputs] : assembler.split(outputs, layout);
      const done = performance.now();
      this.#log(stats, runMs, logger);
      this.options.onBatch?.({
        size: items.length,
        paddingRatio: stats.paddingOverhead,
        durationMs: done - dispatched,
        requestIds: items.flatMap((i) => (i.requestId === undefined ? [] : [i.requestId])),
      });
      const answer = (k: number): void =>
        items[k]!.resolve({
          outputs: parts[k]!,
          batchSize: items.length,
          queueMs: dispatched - items[k]!.enqueuedAt,
          computeMs: done - dispatched,
        });
      // Answered after this batch has freed its worker, large outputs spread over turns of the event loop: resolved
      // together, 32 requests' answers (hooks, serialising, writing) would run as one stretch, and /health waits.
      void answerInTurns(parts, answer);
    } catch (err) {
      // One bad request (say, a sequence longer than the model takes) must not fail the others it was batched
      // with: run each alone. A dead worker is not a bad request; its error stands for all.
      if (items.length > 1 && (err as { code?: unknown }).code === 'inference_failed') return this.#runAlone(items);
      for (const item of items) item.reject(err as Error);
    }
  }

  async #runAlone(items: Item[]): Promise<void> {
    for (const item of items) {
      const dispatched = performance.now();
      try {
        const { outputs } = await this.options.run(this.options.assembler.assemble([item.inputs]).inputs);
        item.resolve({
          outputs,
          batchSize: 1,
          queueMs: dispatched - item.enqueuedAt,
          computeMs: performance.now() - dispatched,
        });
      } catch (err) {
        item.reject(err as Error);
      }
    }
  }

  // The logger carries the model and version; a line per batch says how full and how padded it was.
  #log(stats: BatchStats, runMs: number, logger: Logger | undefined): void {
    logger?.debug(
      {
        size: stats.requests,
        rows: stats.rows,
        ...(stats.averageLength !== undefined && { averageLength: Math.round(stats.averageLength * 100) / 100 }),
        paddingOverhead: Math.round(stats.paddingOverhead * 1000) / 1000,
        runMs: Math.round(runMs * 100) / 100,
      },
      'batch',
    );
  }

  #notifyIdle(): void {
    if (this.#queue.length > 0 || this.#inFlight > 0) return;
    for (const done of [...this.#idle]) done();
    this.#idle.clear();
  }
}

function outputBytes(outputs: Record<string, Tensor>): number {
  let bytes = ANSWER_MIN_BYTES;
  for (const t of Object.values(outputs))
    bytes += ArrayBuffer.isView(t.data) ? t.data.byteLength : (t.data as unknown[]).length * 16;
  return bytes;
}

// Calls `answer(k)` for each part in order, starting a new turn of the event loop once a turn has answered
// ANSWER_TURN_BYTES of outputs; the first answer, and all of them when they are small, go at once.
async function answerInTurns(parts: Record<string, Tensor>[], answer: (k: number) => void): Promise<void> {
  let spent = 0;
  for (let k = 0; k < parts.length; k++) {
    if (spent >= ANSWER_TURN_BYTES) {
      await new Promise((resolve) => setImmediate(resolve));
      spent = 0;
    }
    spent += outputBytes(parts[k]!);
    answer(k);
  }
}
