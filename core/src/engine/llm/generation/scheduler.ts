import type { GenerationPriority } from '@nucleus/sdk';

/** A sequence waiting for a slot, as the scheduler sees it. */
export interface WaitingSequence {
  readonly id: number;
  readonly priority: GenerationPriority;
  /** `performance.now()` when it arrived. */
  readonly arrivedAt: number;
  /** Arrival order, to break ties. */
  readonly order: number;
}

/** The knobs of a {@link GenerationScheduler} (`scheduler.*` in config). */
export interface SchedulerSettings {
  /** Most sequences running (being decoded) at once. */
  maxRunning: number;
  /** Most sequences in one step: one prefill batch, and one decode batch. */
  maxBatchSize: number;
  /** How long new arrivals wait for others to share their prefill. */
  batchWindowMs: number;
  /** `priority`: high before normal before low, then arrival; `fifo`: arrival only. */
  strategy: 'priority' | 'fifo';
}

/** What the scheduler decided for this iteration of the loop. */
export interface SchedulePlan {
  /** Waiting sequences to prefill now, in admission order. */
  admit: WaitingSequence[];
  /** When nothing is admitted although sequences wait: ms until the batch window of the oldest closes. */
  wakeInMs?: number;
}

const RANK: Record<GenerationPriority, number> = { high: 0, normal: 1, low: 2 };

/**
 * Policy of the generation loop: who joins the running batch, and when. New arrivals are held for up to the
 * batch window so they share one prefill, unless they already fill every free slot; the running batch keeps
 * decoding meanwhile. An idle engine (nothing running) holds nobody: there is no step to share yet, so what waits
 * starts at once, as in vLLM, and those who arrive while it runs share the next prefill. Free slots go to the
 * waiting sequences in strategy order.
 */
export class GenerationScheduler {
  #settings: SchedulerSettings;

  constructor(settings: SchedulerSettings) {
    this.#settings = { ...settings };
  }

  /** The current settings. */
  get settings(): Readonly<SchedulerSettings> {
    return this.#settings;
  }

  /** Changes settings at run time; running sequences are never evicted by a lower cap, they just finish. */
  update(patch: Partial<SchedulerSettings>): void {
    this.#settings = { ...this.#settings, ...patch };
  }

  /** Most sequences that may run at once. */
  get capacity(): number {
    return Math.max(1, Math.min(this.#settings.maxRunning, this.#settings.maxBatchSize));
  }

  /** `waiting` in the order they should be taken. */
  order(waiting: readonly WaitingSequence[]): WaitingSequence[] {
    const byArrival = (a: WaitingSequence, b: WaitingSequence) => a.order - b.order;
    if (this.#settings.strategy === 'fifo') return [...waiting].sort(byArrival);
    return [...waiting].sort((a, b) => RANK[a.priority] - RANK[b.priority] || byArrival(a, b));
  }

  /** Decides which waiting sequences start now, given how many are running. */
  plan(waiting: readonly WaitingSequence[], running: number, now: number): SchedulePlan {
    if (waiting.length === 0) return { admit: [] };
    const free = this.capacity - running;
    if (free <= 0) return { admit: [] };
    const take = Math.min(free, this.#settings.maxBatchSize);
    const oldest = Math.min(...waiting.map((w) => w.arrivedAt));
    const windowLeft = this.#settings.batchWindowMs - (now - oldest);
    if (running > 0 && windowLeft > 0 && waiting.length < take) return { admit: [], wakeInMs: windowLeft };
    return { admit: this.order(waiting).slice(0, take) };
  }
}
