import type { WireGenerationEvent, WireStepStats } from './generation-messages.js';
import type { StepReport } from './generation-loop.js';

/**
 * Groups what the loop produces into few messages: events wait until `intervalMs` has passed since the last
 * post, or until something finished, so the main thread gets small groups of tokens instead of one message per
 * token and step, and never has to answer.
 */
export class Outbox {
  #events: WireGenerationEvent[] = [];
  #steps = new Map<'prefill' | 'decode', WireStepStats>();
  #lastPost = 0;
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
    this.#events.push(event);
    if (urgent || event.kind !== 'token') this.#urgent = true;
  }

  /** Adds step telemetry to the next post. */
  record(step: StepReport): void {
    const s = this.#steps.get(step.phase) ?? { phase: step.phase, steps: 0, sequences: 0, tokens: 0, durationMs: 0 };
    s.steps++;
    s.sequences += step.sequences;
    s.tokens += step.tokens;
    s.durationMs += step.durationMs;
    this.#steps.set(step.phase, s);
  }

  /** Posts when the interval has passed or something finished. */
  flushIfDue(): void {
    if (this.#events.length === 0 && this.#steps.size === 0) return;
    if (this.#urgent || this.now() - this.#lastPost >= this.intervalMs) this.flush();
  }

  /** Posts whatever is pending; with `always`, posts even an empty group (state the main thread should hear of now). */
  flush(always = false): void {
    if (!always && this.#events.length === 0 && this.#steps.size === 0) return;
    const events = this.#events;
    const steps = [...this.#steps.values()];
    this.#events = [];
    this.#steps = new Map();
    this.#urgent = false;
    this.#lastPost = this.now();
    this.post(events, steps);
  }
}
