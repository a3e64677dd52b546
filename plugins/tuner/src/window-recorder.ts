import { type EventBus, quantile } from '@nucleus/sdk';
import type { LlmWindow, TensorWindow } from './tuning-controller.js';

interface TensorSamples {
  latencies: number[];
  batches: number;
  batchedRequests: number;
  largestBatch: number;
  /** Run time of each batch in the window, ms. */
  batchMs: number[];
}

/** Most samples kept per model and window; beyond it the oldest are overwritten (p99 of the newest). */
const MAX_SAMPLES = 20_000;

/** Generations remembered as having reported tokens as they went, until they end. */
const MAX_STREAMED = 10_000;

/**
 * What each model did since the previous evaluation, from the bus: tensor requests' end-to-end latency (queue plus
 * compute), batch sizes and batch run times, LLM inter-token gaps, generated tokens and waiting generations. {@link take} hands over a
 * window and starts the next one, so a window after a change measures only the new setting.
 *
 * Inter-token gaps come from `generation.tokens` where an engine reports them; otherwise from `generation.end`, whose
 * mean gap stands for each of the generation's gaps (as the metrics plugin's histogram counts it). Generations wait for
 * a running slot in the server-wide admission queue (`queue.depth` without a model) or in a replica (`engine.stats`).
 */
export class WindowRecorder {
  #tensor = new Map<string, TensorSamples>();
  #itl: number[] = [];
  #tokens = 0;
  readonly #waiting = new Map<string, number>();
  readonly #admissionQueue = new Map<string, number>();
  /** Generations that reported tokens as they went, and whether their gaps came with them. */
  readonly #streamed = new Map<string, boolean>();
  #since: number;

  constructor(private readonly now: () => number = () => performance.now()) {
    this.#since = now();
  }

  /** Subscribes; returns the function that unsubscribes. */
  attach(events: EventBus): () => void {
    const offs = [
      events.on('inference.end', (e) => {
        if (!e.ok) return;
        const s = this.#samples(e.model);
        if (s.latencies.length < MAX_SAMPLES) s.latencies.push(e.queueMs + e.computeMs);
        else s.latencies[Math.floor(Math.random() * MAX_SAMPLES)] = e.queueMs + e.computeMs;
      }),
      events.on('batch.executed', (e) => {
        const s = this.#samples(e.model);
        s.batches++;
        s.batchedRequests += e.size;
        s.largestBatch = Math.max(s.largestBatch, e.size);
        if (s.batchMs.length < MAX_SAMPLES) s.batchMs.push(e.durationMs);
      }),
      events.on('generation.tokens', (e) => {
        this.#tokens += e.tokens;
        const gaps = e.itlMs ?? [];
        if (this.#streamed.has(e.requestId) || this.#streamed.size < MAX_STREAMED)
          this.#streamed.set(e.requestId, this.#streamed.get(e.requestId) === true || gaps.length > 0);
        for (const gap of gaps) this.#gap(gap);
      }),
      events.on('generation.end', (e) => {
        const streamed = this.#streamed.get(e.requestId);
        this.#streamed.delete(e.requestId);
        if (streamed === undefined) this.#tokens += e.completionTokens;
        if (streamed === true || e.meanItlMs === undefined) return;
        for (let i = 1; i < e.completionTokens; i++) this.#gap(e.meanItlMs);
      }),
      events.on('engine.stats', (e) => this.#waiting.set(`${e.model}\u0000${e.version ?? ''}`, e.waiting)),
      events.on('queue.depth', (e) => {
        if (e.model === undefined) this.#admissionQueue.set(e.priority, e.depth);
      }),
      events.on('model.unloaded', (e) => this.#tensor.delete(e.model)),
    ];
    return () => {
      for (const off of offs) off();
    };
  }

  /** The window since the previous call, per tensor model and for the LLMs together; starts the next window. */
  take(): { tensor: Map<string, TensorWindow>; llm: LlmWindow } {
    const at = this.now();
    const seconds = Math.max(1e-3, (at - this.#since) / 1000);
    const tensor = new Map<string, TensorWindow>();
    for (const [model, s] of this.#tensor) {
      const sorted = Float64Array.from(s.latencies).sort();
      tensor.set(model, {
        samples: s.latencies.length,
        p99Ms: quantile(Array.from(sorted), 0.99),
        throughputPerS: s.latencies.length / seconds,
        meanBatchSize: s.batches > 0 ? s.batchedRequests / s.batches : null,
        largestBatch: s.batches > 0 ? s.largestBatch : null,
        batchP99Ms: quantile(Array.from(Float64Array.from(s.batchMs).sort()), 0.99),
      });
    }
    const itl = Array.from(Float64Array.from(this.#itl).sort());
    const llm: LlmWindow = {
      samples: itl.length,
      itlP99Ms: quantile(itl, 0.99),
      tokensPerS: this.#tokens / seconds,
      waiting: [...this.#waiting.values(), ...this.#admissionQueue.values()].reduce((a, b) => a + b, 0),
    };
    this.#tensor = new Map();
    this.#itl = [];
    this.#tokens = 0;
    this.#since = at;
    return { tensor, llm };
  }

  #gap(ms: number): void {
    if (this.#itl.length < MAX_SAMPLES) this.#itl.push(ms);
  }

  #samples(model: string): TensorSamples {
    let s = this.#tensor.get(model);
    if (!s) {
      s = { latencies: [], batches: 0, batchedRequests: 0, largestBatch: 0, batchMs: [] };
      this.#tensor.set(model, s);
    }
    return s;
  }
}
