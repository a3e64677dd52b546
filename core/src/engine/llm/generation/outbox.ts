import type { WireGenerationEvent, WireStepStats } from './generation-messages.js';
import type { StepReport } from './generation-loop.js';

/**
 * Groups what the loop produces into few messages, so the main thread gets small groups of tokens instead of one
 * message per token and step, and never has to answer. Nothing waits longer than about `intervalMs`: the loop
 * checks at the end of every iteration, so what is pending is held only when the next check (as far off as the
 * last iteration took) still comes within `intervalMs` of the oldest pending event. Short steps are grouped; when a
 * step takes as long as the interval, every iteration posts. Finishes and urgent tokens go out at once.
 */
export class Outbox {
  #events: WireGenerationEvent[] = [];
  #steps = new Map<'prefill' | 'decode', WireStepStats>();
  /** When the oldest pending event or step came. */
  #pendingSince = 0;
  #lastCheck: number | undefined;
  #urgent = false;

  constructor(
    private readonly post: (events: WireGenerationEvent[], steps: WireStepStats[]) => void,
    private readonly intervalMs: number,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /**
   * Adds an event; finishes, failures and `urgent` tokens (a sequence's first, whose wait is its time to first
   * token) make the next `flushIfDue` post at once.
   */
  push(event: WireGenerationEvent, urgent = false): void {
    if (this.#empty) this.#pendingSince = this.now();
    this.#events.push(event);
    if (urgent || event.kind !== 'token') this.#urgent = true;
  }

  /** Adds step telemetry to the next post. */
  record(step: StepReport): void {
    if (this.#empty) this.#pendingSince = this.now();
    const s = this.#steps.get(step.phase) ?? { phase: step.phase, steps: 0, sequences: 0, tokens: 0, durationMs: 0 };
    s.steps++;
    s.sequences += step.sequences;
    s.tokens += step.tokens;
    s.durationMs += step.durationMs;
    this.#steps.set(step.phase, s);
  }

  /** Called at the end of every iteration of the loop: posts what should not wait for the next one. */
  flushIfDue(): void {
    const now = this.now();
    const sinceLastCheck = this.#lastCheck === undefined ? 0 : now - this.#lastCheck;
    this.#lastCheck = now;
    if (this.#empty) return;
    if (this.#urgent || now + sinceLastCheck - this.#pendingSince >= this.intervalMs) this.flush();
  }

  get #empty(): boolean {
    return this.#events.length === 0 && this.#steps.size === 0;
  }

  /** Posts whatever is pending; with `always`, posts even an empty group (state the main thread should hear of now). */
  flush(always = false): void {
    if (!always && this.#empty) return;
    const events = this.#events;
    const steps = [...this.#steps.values()];
    this.#events = [];
    this.#steps = new Map();
    this.#urgent = false;
    this.post(events, steps);
  }
}
