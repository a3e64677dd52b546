import type { TunerDecision } from '@nucleus/sdk';

/** The range a knob may be moved in, and the step it grows by. */
export interface KnobBounds {
  min: number;
  max: number;
  step: number;
}

/** How the controller decides (the tuner plugin's config, less what only the plugin reads). */
export interface TunerSettings {
  /** p99 end-to-end latency (queue plus compute) a tensor model should stay under, ms. */
  targetP99Ms: number;
  /** p99 inter-token latency LLM generations should stay under, ms (the `maxRunning` knob). */
  targetItlP99Ms: number;
  /** A knob grows only while p99 is below `target × (1 − hysteresis)`; it shrinks once p99 is above the target. */
  hysteresis: number;
  /** Windows in a row a condition must hold before the knob moves. */
  patience: number;
  /** Windows with fewer samples are not acted on. */
  minSamples: number;
  maxBatchSize: KnobBounds;
  maxQueueDelayMs: KnobBounds;
  maxRunning: KnobBounds;
}

/** What a tensor model did over one evaluation window. */
export interface TensorWindow {
  samples: number;
  p99Ms: number | null;
  throughputPerS: number;
  /** Mean requests per batch in the window. */
  meanBatchSize: number | null;
  /** Requests in the window's largest batch. */
  largestBatch: number | null;
  /** p99 of one batch's run time in the window (no queueing), ms; null when no batch reported it. */
  batchP99Ms: number | null;
}

/** What the LLMs did over one evaluation window. */
export interface LlmWindow {
  /** Inter-token gaps measured in the window. */
  samples: number;
  itlP99Ms: number | null;
  tokensPerS: number;
  /** Generations waiting for a running slot at the end of the window (summed over LLMs). */
  waiting: number;
}

/** A decision before it is applied: the event's fields less the model. */
export type KnobChange = Omit<TunerDecision, 'model'>;

type Pressure = 'over' | 'under' | 'hold';

/** An increase on trial: kept when the next window's throughput beats the one before it by this fraction. */
const MIN_GAIN = 0.05;
/** Windows a knob whose increase was taken back is not raised again. */
const COOLDOWN_WINDOWS = 10;

/** An increase waiting for its first window to show it raised throughput. */
interface Trial {
  knob: 'maxBatchSize' | 'maxQueueDelayMs';
  previous: number;
  throughputPerS: number;
}

const round = (v: number): number => Math.round(v * 100) / 100;

/**
 * Additive increase, multiplicative decrease toward a p99 target, as Clipper tunes batch sizes: while p99 has
 * headroom, a knob that limits throughput grows by one step (the batch cap when batches fill it, else the queue delay
 * so that batches can fill); once p99 passes the target, the queue delay halves first (it is pure waiting), then the
 * batch cap, but only while one batch's own run takes more than half the target (a request waits for at most the
 * batch ahead of it and its own) and batches reach more than half the cap: when batches are quick and p99 is queueing
 * under a load the server cannot keep up with, smaller batches would only lower throughput, and a cap no batch reaches
 * changes nothing now but would hold back a heavier load later, so it holds. An increase is a trial: when the window after it does
 * not show more throughput (batches that cannot fill, however long they wait), or p99 passes the target, it is taken
 * back and that knob rests for a while. Hysteresis keeps it from flapping: growth needs p99 below the target by a
 * margin, every move needs the condition to hold for `patience` windows with enough samples, and each window after a
 * move measures only the new setting. Pure: it is fed measured windows and returns decisions, which the plugin applies.
 */
export class TuningController {
  readonly #streaks = new Map<string, { pressure: Pressure; windows: number }>();
  readonly #trials = new Map<string, Trial>();
  /** Windows left before a knob may be raised again, by model and knob. */
  readonly #resting = new Map<string, number>();

  constructor(readonly settings: TunerSettings) {}

  /** The changes to make to a tensor model's batching after one window; empty to keep it. */
  tensor(model: string, w: TensorWindow, now: { maxBatchSize: number; maxQueueDelayMs: number }): KnobChange[] {
    const s = this.settings;
    const target = s.targetP99Ms;
    const measured = { p99Ms: w.p99Ms, throughputPerS: round(w.throughputPerS), targetP99Ms: target };
    const pressure = this.#pressure(model, w.samples, w.p99Ms, target);
    for (const knob of ['maxBatchSize', 'maxQueueDelayMs'] as const) {
      const key = `${model}\u0000${knob}`;
      const left = (this.#resting.get(key) ?? 0) - 1;
      if (left > 0) this.#resting.set(key, left);
      else this.#resting.delete(key);
    }
    const judged = this.#judgeTrial(model, w, now);
    if (judged) return [{ ...judged, ...measured }];
    if (pressure === 'hold') return [];
    const p99 = `p99 ${round(w.p99Ms!)} ms`;
    const rate = `${round(w.throughputPerS)} req/s`;
    if (pressure === 'over') {
      // Below half a millisecond the next halving is no wait at all.
      const halved = now.maxQueueDelayMs <= 0.5 ? 0 : now.maxQueueDelayMs / 2;
      const delay = this.#clamp(halved, s.maxQueueDelayMs, true);
      if (delay < now.maxQueueDelayMs) {
        this.#moved(model);
        return [
          {
            knob: 'maxQueueDelayMs',
            previous: now.maxQueueDelayMs,
            value: delay,
            reason: `${p99} is over the ${target} ms target at ${rate}: halving the queue delay`,
            ...measured,
          },
        ];
      }
      // Quick batches: the p99 is queueing behind a full server, which smaller batches would only make worse.
      if (w.batchP99Ms !== null && w.batchP99Ms <= target / 2) return [];
      // No batch reached half the cap: halving it would change no batch now, and only hold back a heavier load later.
      if (w.largestBatch !== null && w.largestBatch <= now.maxBatchSize / 2) return [];
      const size = this.#clamp(Math.floor(now.maxBatchSize / 2), s.maxBatchSize);
      if (size < now.maxBatchSize) {
        this.#moved(model);
        const batch = w.batchP99Ms === null ? '' : ` and a batch alone takes up to ${round(w.batchP99Ms)} ms`;
        return [
          {
            knob: 'maxBatchSize',
            previous: now.maxBatchSize,
            value: size,
            reason: `${p99} is over the ${target} ms target at ${rate} with the queue delay at its floor${batch}: halving the batch size`,
            ...measured,
          },
        ];
      }
      return [];
    }
    // Headroom: grow what limits throughput.
    const filling = w.meanBatchSize !== null && w.meanBatchSize >= 0.8 * now.maxBatchSize;
    if (filling) {
      const size = this.#clamp(now.maxBatchSize + s.maxBatchSize.step, s.maxBatchSize);
      if (size > now.maxBatchSize && !this.#resting.has(`${model}\u0000maxBatchSize`)) {
        this.#moved(model);
        this.#trials.set(model, { knob: 'maxBatchSize', previous: now.maxBatchSize, throughputPerS: w.throughputPerS });
        return [
          {
            knob: 'maxBatchSize',
            previous: now.maxBatchSize,
            value: size,
            reason: `${p99} is under the ${target} ms target at ${rate} and batches fill their cap (mean ${round(w.meanBatchSize!)}): raising the batch size`,
            ...measured,
          },
        ];
      }
      return [];
    }
    const delay = this.#clamp(now.maxQueueDelayMs + s.maxQueueDelayMs.step, s.maxQueueDelayMs, true);
    if (delay > now.maxQueueDelayMs && !this.#resting.has(`${model}\u0000maxQueueDelayMs`)) {
      this.#moved(model);
      this.#trials.set(model, {
        knob: 'maxQueueDelayMs',
        previous: now.maxQueueDelayMs,
        throughputPerS: w.throughputPerS,
      });
      return [
        {
          knob: 'maxQueueDelayMs',
          previous: now.maxQueueDelayMs,
          value: delay,
          reason: `${p99} is under the ${target} ms target at ${rate} and batches stay small (mean ${round(w.meanBatchSize ?? 0)}): waiting longer to fill them`,
          ...measured,
        },
      ];
    }
    return [];
  }

  /** The change to make to `scheduler.maxRunning` after one window of the LLMs; empty to keep it. */
  llm(w: LlmWindow, maxRunning: number): KnobChange[] {
    const s = this.settings;
    const target = s.targetItlP99Ms;
    const pressure = this.#pressure('*', w.samples, w.itlP99Ms, target);
    if (pressure === 'hold') return [];
    const measured = { p99Ms: w.itlP99Ms, throughputPerS: round(w.tokensPerS), targetP99Ms: target };
    const itl = `inter-token p99 ${round(w.itlP99Ms!)} ms`;
    let value = maxRunning;
    let reason = '';
    if (pressure === 'over') {
      value = this.#clamp(Math.floor(maxRunning / 2), s.maxRunning);
      reason = `${itl} is over the ${target} ms target at ${round(w.tokensPerS)} tokens/s: halving the generations run at once`;
    } else if (w.waiting > 0) {
      value = this.#clamp(maxRunning + s.maxRunning.step, s.maxRunning);
      reason = `${itl} is under the ${target} ms target and ${w.waiting} generations wait: running more at once`;
    }
    if (value === maxRunning) return [];
    this.#moved('*');
    return [{ knob: 'maxRunning', previous: maxRunning, value, reason, ...measured }];
  }

  /** Forgets a model's streak, trial and resting knobs (it was unloaded). */
  forget(model: string): void {
    this.#streaks.delete(model);
    this.#trials.delete(model);
    for (const knob of ['maxBatchSize', 'maxQueueDelayMs']) this.#resting.delete(`${model}\u0000${knob}`);
  }

  // The first full window after an increase keeps it only if throughput rose and p99 stayed under the target.
  #judgeTrial(
    model: string,
    w: TensorWindow,
    now: { maxBatchSize: number; maxQueueDelayMs: number },
  ): Omit<KnobChange, 'p99Ms' | 'throughputPerS' | 'targetP99Ms'> | undefined {
    const trial = this.#trials.get(model);
    if (!trial || w.samples < this.settings.minSamples || w.p99Ms === null) return undefined;
    this.#trials.delete(model);
    const target = this.settings.targetP99Ms;
    const before = round(trial.throughputPerS);
    const after = round(w.throughputPerS);
    let why: string;
    if (w.p99Ms > target) why = `pushed p99 to ${round(w.p99Ms)} ms, over the ${target} ms target`;
    else if (w.throughputPerS < trial.throughputPerS * (1 + MIN_GAIN))
      why = `did not raise throughput (${before} → ${after} req/s)`;
    else return undefined;
    const value = now[trial.knob];
    if (value === trial.previous) return undefined;
    this.#moved(model);
    this.#resting.set(`${model}\u0000${trial.knob}`, COOLDOWN_WINDOWS);
    return {
      knob: trial.knob,
      previous: value,
      value: trial.previous,
      reason: `raising ${trial.knob} to ${value} ${why}: back to ${trial.previous}, not raised again for ${COOLDOWN_WINDOWS} windows`,
    };
  }

  // Which way the window pushes, once it has pushed that way for `patience` windows in a row.
  #pressure(id: string, samples: number, p99: number | null, target: number): Pressure {
    const s = this.settings;
    let now: Pressure = 'hold';
    if (samples >= s.minSamples && p99 !== null) {
      if (p99 > target) now = 'over';
      else if (p99 < target * (1 - s.hysteresis)) now = 'under';
    }
    const streak = this.#streaks.get(id);
    const windows = streak?.pressure === now ? streak.windows + 1 : 1;
    this.#streaks.set(id, { pressure: now, windows });
    return now !== 'hold' && windows >= s.patience ? now : 'hold';
  }

  // A move starts the count again: the next windows judge the new setting.
  #moved(id: string): void {
    this.#streaks.delete(id);
  }

  #clamp(v: number, b: KnobBounds, fractional = false): number {
    const value = fractional ? round(v) : Math.round(v);
    return Math.min(b.max, Math.max(b.min, value));
  }
}
