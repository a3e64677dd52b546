import type { FinishReason, GenerationPriority } from '@nucleus/sdk';
import type { DecoderRunner, StepResult } from './decoder-session.js';
import { KvBatch, type RowSource } from './kv-batch.js';
import { Sampler, type LogitsRow, type SamplingParams } from './sampler.js';
import type { GenerationScheduler, WaitingSequence } from './scheduler.js';
import { StopMatcher } from './stop-matcher.js';

/** Turns token ids into text as they come, never splitting a UTF-8 character. */
export interface TextStreamDecoder {
  push(id: number): string;
  flush(): string;
}

/** Everything the loop needs to run one sequence (one choice of one request). */
export interface SequenceInit {
  /** Unique within the loop. */
  id: number;
  promptIds: readonly number[];
  params: SamplingParams;
  seed: number;
  maxTokens: number;
  stop: readonly string[];
  /** Tokens that end the sequence with `stop` (unless `ignoreEos`). */
  eosTokenIds: readonly number[];
  ignoreEos: boolean;
  priority: GenerationPriority;
  decoder: TextStreamDecoder;
}

/** Where the loop sends what sequences produce. */
export interface LoopSink {
  /** A token was generated; `text` is the output it released (may be empty). */
  token(id: number, tokenId: number, text: string): void;
  /** A sequence ended; `text` is held-back output released at the end. */
  finish(id: number, reason: FinishReason, text: string, completionTokens: number, stop?: string): void;
  /** A step failed; these sequences are dropped. */
  fail(ids: readonly number[], err: unknown): void;
}

/** Steps run in one call of {@link GenerationLoop.iterate}, for telemetry. */
export interface StepReport {
  phase: 'prefill' | 'decode';
  sequences: number;
  /** Prompt tokens processed (prefill) or tokens produced (decode). */
  tokens: number;
  durationMs: number;
}

/** The outcome of one iteration. */
export interface IterationResult {
  /** Nothing ran: nothing is running, and nothing waiting may start yet. */
  idle: boolean;
  /** When idle with sequences waiting: ms until one may start. */
  wakeInMs?: number;
  steps: StepReport[];
}

class Sequence implements WaitingSequence {
  readonly id: number;
  readonly priority: GenerationPriority;
  readonly arrivedAt: number;
  readonly order: number;
  readonly sampler: Sampler;
  readonly stop: StopMatcher;
  readonly eos: ReadonlySet<number>;
  generated = 0;
  lastToken = -1;
  cancelled = false;

  constructor(
    readonly init: SequenceInit,
    now: number,
    order: number,
  ) {
    this.id = init.id;
    this.priority = init.priority;
    this.arrivedAt = now;
    this.order = order;
    this.sampler = new Sampler(init.params, init.seed, init.promptIds);
    this.stop = new StopMatcher(init.stop);
    this.eos = new Set(init.ignoreEos ? [] : init.eosTokenIds);
  }
}

/**
 * The engine loop, one readable place: schedule (who joins), run one step for every running sequence, sample,
 * check stops, emit. Sequences join and leave the running batch between any two decode steps; the scheduler
 * decides who joins, the runner knows how a step runs, the sampler and stop matcher what a token means.
 */
export class GenerationLoop {
  readonly #runner: DecoderRunner;
  readonly #scheduler: GenerationScheduler;
  readonly #sink: LoopSink;
  readonly #maxContext: number;
  readonly #now: () => number;
  #waiting: Sequence[] = [];
  /** Running sequences, in the row order of `#kv`. */
  #running: Sequence[] = [];
  #kv: KvBatch | undefined;
  #arrivals = 0;

  constructor(options: { runner: DecoderRunner; scheduler: GenerationScheduler; sink: LoopSink; maxContext: number; now?: () => number }) {
    this.#runner = options.runner;
    this.#scheduler = options.scheduler;
    this.#sink = options.sink;
    this.#maxContext = options.maxContext;
    this.#now = options.now ?? (() => performance.now());
  }

  /** Sequences being decoded now. */
  get running(): number {
    return this.#running.length;
  }

  /** Sequences waiting for a slot. */
  get waiting(): number {
    return this.#waiting.length;
  }

  /** Queues a sequence; it joins the running batch when the scheduler admits it. */
  add(init: SequenceInit): void {
    this.#waiting.push(new Sequence(init, this.#now(), this.#arrivals++));
  }

  /** Ends a sequence with `cancelled`: at once when waiting, before the next step when running. */
  cancel(id: number): void {
    const i = this.#waiting.findIndex((s) => s.id === id);
    if (i >= 0) {
      const [seq] = this.#waiting.splice(i, 1);
      this.#sink.finish(id, 'cancelled', '', seq!.generated);
      return;
    }
    const running = this.#running.find((s) => s.id === id);
    if (running) running.cancelled = true;
  }

  /** One iteration: drop cancelled sequences, admit and prefill newcomers, then one decode step for all. */
  async iterate(): Promise<IterationResult> {
    const steps: StepReport[] = [];
    this.#dropCancelled();
    const plan = this.#scheduler.plan(this.#waiting, this.#running.length, this.#now());
    if (plan.admit.length > 0) {
      const admitted = new Set(plan.admit.map((w) => w.id));
      const joining = this.#waiting.filter((s) => admitted.has(s.id));
      this.#waiting = this.#waiting.filter((s) => !admitted.has(s.id));
      steps.push(await this.#prefill(plan.admit.map((w) => joining.find((s) => s.id === w.id)!)));
    }
    if (this.#running.length > 0) steps.push(await this.#decode());
    if (steps.length === 0) return { idle: true, ...(plan.wakeInMs !== undefined && { wakeInMs: plan.wakeInMs }), steps };
    return { idle: false, steps };
  }

  async #prefill(joining: Sequence[]): Promise<StepReport> {
    const started = this.#now();
    const tokens = joining.reduce((n, s) => n + s.init.promptIds.length, 0);
    let result: StepResult;
    try {
      result = await this.#runner.prefill(joining.map((s) => s.init.promptIds));
    } catch (err) {
      this.#sink.fail(
        joining.map((s) => s.id),
        err,
      );
      return { phase: 'prefill', sequences: joining.length, tokens, durationMs: this.#now() - started };
    }
    const survivors: RowSource[] = [];
    joining.forEach((seq, row) => {
      if (this.#accept(seq, result.logits[row]!, result.kv.lengths[row]!)) survivors.push({ batch: result.kv, row });
    });
    const kept: RowSource[] = this.#kv ? this.#running.map((_, row) => ({ batch: this.#kv!, row })) : [];
    const joined = survivors.map((s) => joining[s.row]!);
    if (joined.length > 0) {
      this.#running = [...this.#running, ...joined];
      this.#kv = KvBatch.gather(this.#runner.layout, [...kept, ...survivors]);
    }
    return { phase: 'prefill', sequences: joining.length, tokens, durationMs: this.#now() - started };
  }

  async #decode(): Promise<StepReport> {
    const started = this.#now();
    const running = this.#running;
    let result: StepResult;
    try {
      result = await this.#runner.decode(
        this.#kv!,
        running.map((s) => s.lastToken),
      );
    } catch (err) {
      this.#running = [];
      this.#kv = undefined;
      this.#sink.fail(
        running.map((s) => s.id),
        err,
      );
      return { phase: 'decode', sequences: running.length, tokens: 0, durationMs: this.#now() - started };
    }
    const keep: number[] = [];
    running.forEach((seq, row) => {
      if (this.#accept(seq, result.logits[row]!, result.kv.lengths[row]!)) keep.push(row);
    });
    this.#kv = result.kv;
    this.#keepRows(keep);
    return { phase: 'decode', sequences: running.length, tokens: running.length, durationMs: this.#now() - started };
  }

  /** Samples a sequence's next token and applies the stop rules; true while the sequence goes on. */
  #accept(seq: Sequence, logits: LogitsRow, cached: number): boolean {
    if (seq.cancelled) {
      this.#sink.finish(seq.id, 'cancelled', '', seq.generated);
      return false;
    }
    const token = seq.sampler.sample(logits);
    seq.sampler.accept(token);
    seq.generated++;
    seq.lastToken = token;
    if (seq.eos.has(token)) return this.#end(seq, 'stop');
    const check = seq.stop.push(seq.init.decoder.push(token));
    this.#sink.token(seq.id, token, check.text);
    if (check.stop !== undefined) {
      this.#sink.finish(seq.id, 'stop_sequence', '', seq.generated, check.stop);
      return false;
    }
    // The next step would put this token at position `cached`; the context window must hold it.
    if (seq.generated >= seq.init.maxTokens || cached + 1 > this.#maxContext) return this.#end(seq, 'length');
    return true;
  }

  // Ends a sequence without a stop string so far: the decoder's and the matcher's held text is released.
  #end(seq: Sequence, reason: FinishReason): false {
    const check = seq.stop.push(seq.init.decoder.flush());
    if (check.stop !== undefined) {
      this.#sink.finish(seq.id, 'stop_sequence', check.text, seq.generated, check.stop);
      return false;
    }
    this.#sink.finish(seq.id, reason, check.text + seq.stop.flush(), seq.generated);
    return false;
  }

  #dropCancelled(): void {
    if (!this.#running.some((s) => s.cancelled)) return;
    const keep: number[] = [];
    this.#running.forEach((seq, row) => {
      if (seq.cancelled) this.#sink.finish(seq.id, 'cancelled', '', seq.generated);
      else keep.push(row);
    });
    this.#keepRows(keep);
  }

  // Re-packs the cache when rows left; the rows that stay keep their order.
  #keepRows(rows: number[]): void {
    if (rows.length === this.#running.length) return;
    const kv = this.#kv!;
    this.#running = rows.map((r) => this.#running[r]!);
    this.#kv = rows.length === 0 ? undefined : KvBatch.gather(this.#runner.layout, rows.map((row) => ({ batch: kv, row })));
  }
}
