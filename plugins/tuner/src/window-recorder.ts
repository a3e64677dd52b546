import { type EventBus, quantile } from '@nucleus/sdk';
import type { LlmWindow, TensorWindow } from './tuning-controller.js';

interface TensorSamples {
  latencies: number[];
  batches: number;
  batchedRequests: number;
}

/** Most samples kept per model and window; beyond it the oldest are overwritten (p99 of the newest). */
const MAX_SAMPLES = 20_000;

/**
 * What each model did since the previous evaluation, from the bus: tensor requests' end-to-end latency (queue plus
 * compute) and batch sizes, LLM inter-token gaps, generated tokens and waiting generations. {@link take} hands over a
 * window and starts the next one, so a window after a change measures only the new setting.
 */
export class WindowRecorder {
  #tensor = new Map<string, TensorSamples>();
  #itl: number[] = [];
  #tokens = 0;
  readonly #waiting = new Map<string, number>();
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
      }),
      events.on('generation.tokens', (e) => {
        this.#tokens += e.tokens;
        for (const gap of e.itlMs ?? []) if (this.#itl.length < MAX_SAMPLES) this.#itl.push(gap);
      }),
      events.on('engine.stats', (e) => this.#waiting.set(`${e.model}\u0000${e.version ?? ''}`, e.waiting)),
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
      });
    }
    const itl = Array.from(Float64Array.from(this.#itl).sort());
    const llm: LlmWindow = {
      samples: itl.length,
      itlP99Ms: quantile(itl, 0.99),
      tokensPerS: this.#tokens / seconds,
      waiting: [...this.#waiting.values()].reduce((a, b) => a + b, 0),
    };
    this.#tensor = new Map();
    this.#itl = [];
    this.#tokens = 0;
    this.#since = at;
    return { tensor, llm };
  }

  #samples(model: string): TensorSamples {
    let s = this.#tensor.get(model);
    if (!s) {
      s = { latencies: [], batches: 0, batchedRequests: 0 };
      this.#tensor.set(model, s);
    }
    return s;
  }
}
