import { OutcomeWindow } from './outcome-window.js';
import type { CanarySettings } from './traffic-policy.js';

/** Where a canary stands: being stepped up, at 100 %, or rolled back to 0 %. */
export type CanaryState = 'stepping' | 'promoted' | 'rolled_back';

/** Why a canary was rolled back, with the figures that decided it. */
export interface Rollback {
  reason: 'error_rate' | 'latency';
  /** What was measured on the canary (error rate 0 to 1, or p99 ms). */
  value: number;
  /** The bound it crossed (the stable version's figure plus the allowed increase, or times the allowed ratio). */
  threshold: number;
  /** One line a user can read. */
  summary: string;
}

/**
 * A canary's rollout: its share starts at `startPercent` and grows by `stepPercent` every `stepIntervalMs` while its
 * error rate and p99 latency over the window stay within bounds of the stable version's; the first time they do not
 * (judged on every answer, once it has `minRequests` in the window), it drops to 0 % and stays there. Time comes in
 * as `now` arguments, so the rules can be driven by a test clock.
 */
export class CanaryController {
  readonly stable: OutcomeWindow;
  readonly canary: OutcomeWindow;
  #percent: number;
  #state: CanaryState = 'stepping';
  #steps = 0;
  #lastStep: number;
  #rollback: Rollback | undefined;

  constructor(
    readonly settings: CanarySettings,
    start: number,
  ) {
    this.stable = new OutcomeWindow(settings.windowMs);
    this.canary = new OutcomeWindow(settings.windowMs);
    this.#percent = settings.startPercent;
    this.#lastStep = start;
    if (this.#percent >= 100) this.#state = 'promoted';
  }

  /** The canary's share now, in %. */
  get percent(): number {
    return this.#percent;
  }

  get state(): CanaryState {
    return this.#state;
  }

  /** Steps taken so far. */
  get steps(): number {
    return this.#steps;
  }

  get rollback(): Rollback | undefined {
    return this.#rollback;
  }

  /** Records an answer; returns the rollback when this answer tipped the canary out of bounds. */
  observe(role: 'stable' | 'canary', now: number, failed: boolean, durationMs: number): Rollback | undefined {
    (role === 'stable' ? this.stable : this.canary).add(now, failed, durationMs);
    if (this.#state !== 'stepping') return undefined;
    const breach = this.#breach(now);
    if (breach) this.#rollBack(breach);
    return breach;
  }

  /**
   * Takes the next step when one is due and the canary is within bounds with enough answers in the window; a due
   * step without enough answers waits. Returns whether it stepped.
   */
  tick(now: number): boolean {
    if (this.#state !== 'stepping' || now - this.#lastStep < this.settings.stepIntervalMs) return false;
    if (this.canary.count(now) < this.settings.minRequests || this.#breach(now)) return false;
    this.#percent = Math.min(100, this.#percent + this.settings.stepPercent);
    this.#steps++;
    this.#lastStep = now;
    if (this.#percent >= 100) this.#state = 'promoted';
    return true;
  }

  #breach(now: number): Rollback | undefined {
    const s = this.settings;
    if (this.canary.count(now) < s.minRequests) return undefined;
    const seconds = Math.round(s.windowMs / 1000);
    const canaryErrors = this.canary.errorRate(now);
    const stableErrors = this.stable.errorRate(now);
    const errorBound = stableErrors + s.maxErrorRateIncrease;
    if (canaryErrors > errorBound) {
      return {
        reason: 'error_rate',
        value: canaryErrors,
        threshold: errorBound,
        summary: `its error rate ${pct(canaryErrors)} over the last ${seconds} s exceeds the stable version's ${pct(stableErrors)} by more than ${pct(s.maxErrorRateIncrease)}`,
      };
    }
    // Latency is only compared against a stable figure measured over as many answers.
    const canaryP99 = this.canary.p99(now);
    const stableP99 = this.stable.count(now) >= s.minRequests ? this.stable.p99(now) : undefined;
    if (canaryP99 !== undefined && stableP99 !== undefined && canaryP99 > stableP99 * s.maxLatencyRatio) {
      return {
        reason: 'latency',
        value: canaryP99,
        threshold: stableP99 * s.maxLatencyRatio,
        summary: `its p99 latency ${canaryP99.toFixed(1)} ms over the last ${seconds} s is more than ${s.maxLatencyRatio}× the stable version's ${stableP99.toFixed(1)} ms`,
      };
    }
    return undefined;
  }

  #rollBack(breach: Rollback): void {
    this.#percent = 0;
    this.#state = 'rolled_back';
    this.#rollback = breach;
  }
}

function pct(rate: number): string {
  return `${(rate * 100).toFixed(1)} %`;
}
