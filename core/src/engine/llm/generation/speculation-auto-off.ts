import type { SpeculationAutoOff } from '@nucleus/sdk';

/** What auto-off keeps per sequence. */
export interface AutoOffState {
  /** [drafted, accepted] per verify since drafting last (re)started, the latest last. */
  readonly verified: [number, number][];
  /** Steps left before the sequence drafts again. */
  coolDown: number;
  /** Pauses since a window of drafts last paid; each one doubles the next cool-down. */
  pausesInARow: number;
}

/** Most doublings of the cool-down: a request whose drafts never pay probes once every 64 cool-downs. */
const MAX_DOUBLINGS = 6;
/** Latest steps the running step costs are the median of. */
const COST_SAMPLES = 16;
/**
 * Verify steps the costs must rest on before they can pause drafting: the first steps (a warm-up's, cold sessions) cost
 * several times what later ones do, and a pause on cost lasts the longest cool-down.
 */
const SETTLED_STEPS = 8;

/**
 * Auto-off (seed 004 R12): per request, drafting pauses when it does not pay, and is tried again after a cool-down.
 * "Pays" is judged on acceptance and on cost: the loop tells it what plain steps, verify steps and drafting cost per
 * row (running medians), so a draft model whose own steps cost more than its accepted tokens save is paused even at
 * an acceptance rate above the threshold. The decision is taken as soon as the window of draft tokens can no longer
 * pay, not only when it is full: on a short request every losing draft counts.
 */
export class SpeculationAutoOffPolicy {
  readonly settings: SpeculationAutoOff;
  readonly #k: number;
  // Medians, not averages: a request's first draft includes the draft model's prefill of its prompt, a spike that an
  // average would carry into the next steps' verdicts.
  readonly #plainMsPerRow = new RecentMedian(COST_SAMPLES);
  readonly #verifyMsPerRow = new RecentMedian(COST_SAMPLES);
  readonly #draftMsPerToken = new RecentMedian(COST_SAMPLES);
  #verifySteps = 0;
  /**
   * The server-level prior (seed 004 R12: per server, off where it no longer pays): the pauses in a row and the
   * cool-down steps left of the latest sequence that paused, which a new sequence starts from. Without it each request
   * paid for its own probe (the draft model's prefill and a window of drafts), which on short requests with a draft
   * that never pays costs more than auto-off saves. A window of drafts that pays clears it.
   */
  #priorPauses = 0;
  #priorCoolDown = 0;

  constructor(settings: SpeculationAutoOff, numSpeculativeTokens: number) {
    this.settings = settings;
    this.#k = numSpeculativeTokens;
  }

  /** A plain decode step over `rows` sequences took `ms`. */
  observePlain(ms: number, rows: number): void {
    if (rows > 0) this.#plainMsPerRow.add(ms / rows);
  }

  /** A verify step over `rows` sequences took `verifyMs`; drafting its `draftTokens` tokens took `draftMs`. */
  observeSpeculative(verifyMs: number, rows: number, draftMs: number, draftTokens: number): void {
    if (rows > 0) {
      this.#verifyMsPerRow.add(verifyMs / rows);
      this.#verifySteps++;
    }
    if (draftTokens > 0) this.#draftMsPerToken.add(draftMs / draftTokens);
  }

  /**
   * Speculation's expected speed-up per row at this acceptance rate (accepted over drafted tokens), from the running
   * step costs; undefined until they rest on enough verify steps. A verify step stands in for the plain one until one
   * ran: it costs at least as much, so the estimate errs towards speculating.
   */
  expectedSpeedup(rate: number): number | undefined {
    const verify = this.#verifyMsPerRow.value;
    if (verify === undefined || this.#verifySteps < SETTLED_STEPS) return undefined;
    const plain = this.#plainMsPerRow.value ?? verify;
    const cost = verify + this.#k * (this.#draftMsPerToken.value ?? 0);
    return cost > 0 ? ((1 + rate * this.#k) * plain) / cost : undefined;
  }

  /**
   * A sequence starts: with `acrossRequests`, it takes over the cool-down the model's latest paused sequence left, and
   * its pauses in a row, so a pair whose drafts stopped paying stays off across requests until a probe finds they pay.
   */
  begin(state: AutoOffState): void {
    if (!this.settings.acrossRequests) return;
    state.pausesInARow = this.#priorPauses;
    state.coolDown = this.#priorCoolDown;
  }

  /** True while the sequence sits out its cool-down (each step it runs counts one off, the server's too). */
  paused(state: AutoOffState): boolean {
    if (state.coolDown <= 0) return false;
    state.coolDown--;
    if (this.#priorCoolDown > 0) this.#priorCoolDown--;
    return true;
  }

  /** Records a verify of the sequence's draft; true when drafting pauses for it now. */
  record(state: AutoOffState, drafted: number, accepted: number): boolean {
    const { window, minAcceptance, coolDownSteps } = this.settings;
    state.verified.push([drafted, accepted]);
    let total = state.verified.reduce((n, [d]) => n + d, 0);
    while (state.verified.length > 1 && total - state.verified[0]![0] >= window) total -= state.verified.shift()![0];
    const acceptedTotal = state.verified.reduce((n, [, a]) => n + a, 0);
    // Before the window is full, the best rate it can still reach: every draft token still to come accepted.
    const rate = total >= window ? acceptedTotal / total : (acceptedTotal + window - total) / window;
    const speedup = this.expectedSpeedup(rate);
    if (rate >= minAcceptance && (speedup === undefined || speedup >= 1)) {
      if (total >= window) {
        state.pausesInARow = 0;
        this.#priorPauses = 0;
        this.#priorCoolDown = 0;
      }
      return false;
    }
    // Drafts that could not pay even if all were accepted: the draft model costs more than it can save.
    if ((this.expectedSpeedup(1) ?? 1) < 1) state.pausesInARow = MAX_DOUBLINGS;
    state.verified.length = 0;
    state.coolDown = coolDownSteps * 2 ** Math.min(MAX_DOUBLINGS, state.pausesInARow++);
    this.#priorPauses = state.pausesInARow;
    this.#priorCoolDown = state.coolDown;
    return true;
  }
}

/** The median of the latest `size` values added. */
class RecentMedian {
  readonly #values: number[] = [];
  #next = 0;

  constructor(readonly size: number) {}

  add(value: number): void {
    if (this.#values.length < this.size) this.#values.push(value);
    else this.#values[this.#next] = value;
    this.#next = (this.#next + 1) % this.size;
  }

  /** Undefined before a value was added. */
  get value(): number | undefined {
    if (this.#values.length === 0) return undefined;
    const sorted = [...this.#values].sort((a, b) => a - b);
    const mid = sorted.length >> 1;
    return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1]! + sorted[mid]!) / 2;
  }
}
