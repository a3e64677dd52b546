import type { FinishReason, GenerationPriority } from '@nucleus/sdk';
import type { PrefixCache } from '../prefix-cache/prefix-cache.js';
import { isAllocationFailure } from '../../allocation-failure.js';
import { ConcatenatedKvRows } from './concatenated-kv-rows.js';
import { isResidentKvRunner, type ResidentKvRunner } from './contrib-session.js';
import type { DecoderRunner } from './decoder-session.js';
import type { KvRows, Newcomer } from './kv-rows.js';
import { ResidentKvRows } from './resident-kv-rows.js';
import { Sampler, type LogitsRow, type SamplingParams } from './sampler.js';
import {
  SpeculativeDecoding,
  type SpeculatingSequence,
  type Speculation,
  type SpeculationStats,
  type SpeculativeStep,
} from './speculative-step.js';
import type { GenerationScheduler, WaitingSequence } from './scheduler.js';
import { StopMatcher } from './stop-matcher.js';
import type { TokenConstraint } from './token-constraint.js';
import { tokenLogprobs, type RawTokenLogprobs } from './token-logprobs.js';

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
  /** The conversation the sequence belongs to; its prefix-cache blocks are tagged with it. */
  conversationId?: string;
  /** The prefix-cache namespace the sequence reads and leaves its blocks in (the common one when absent). */
  cacheNamespace?: string;
  /** What the output must be (a JSON schema's values): the sampler masks other tokens, the sequence ends when complete. */
  constraint?: TokenConstraint;
  /** Log-probs of each token with this many alternatives; absent: none computed. */
  logprobs?: number;
}

/** Where the loop sends what sequences produce. */
export interface LoopSink {
  /** A token was generated; `text` is the output it released (may be empty); `logprobs` where the sequence asked. */
  token(id: number, tokenId: number, text: string, logprobs?: RawTokenLogprobs): void;
  /** A sequence ended; `text` is held-back output released at the end. */
  finish(id: number, reason: FinishReason, text: string, completionTokens: number, stop?: string): void;
  /**
   * A step failed for these sequences, also when run alone (and, for an allocation failure, with the prefix cache
   * emptied); they are dropped, the others go on.
   */
  fail(ids: readonly number[], err: unknown): void;
  /** A sequence was prefilled; `cachedTokens` of its prompt came from the prefix cache. */
  prefilled?(id: number, cachedTokens: number): void;
  /**
   * The newcomers of this iteration were prefilled (their first tokens handed to `token`) and the decode step is
   * next: a sink that groups tokens sends the first ones now rather than after that step.
   */
  prefillDone?(): void;
}

/** Steps run in one call of {@link GenerationLoop.iterate}, for telemetry. */
export interface StepReport {
  phase: 'prefill' | 'decode';
  sequences: number;
  /** Prompt tokens processed (prefill) or tokens produced (decode). */
  tokens: number;
  /** Prefill: prompt tokens whose KV came from the prefix cache, and were not processed. */
  cachedTokens?: number;
  durationMs: number;
}

/** How the loop got through failed steps, counted since it started. */
export interface StepRecovery {
  /** Times an allocation failure emptied the prefix cache before the step was tried again. */
  cacheFlushes: number;
  /** Times a failed step was split into smaller batches. */
  splits: number;
  /** Sequences that failed even in a step of their own. */
  failedAlone: number;
}

/** One part of a step run over some rows: its result, or the error it failed with alone. */
type StepPart<R> = { ok: true; rows: number[]; result: R } | { ok: false; rows: number[]; error: unknown };

/** The outcome of one iteration. */
export interface IterationResult {
  /** Nothing ran: nothing is running, and nothing waiting may start yet. */
  idle: boolean;
  /** When idle with sequences waiting: ms until one may start. */
  wakeInMs?: number;
  steps: StepReport[];
}

/** Steps that go through at a row cap before twice as many rows are tried again. */
const CAP_PROBE_STEPS = 32;

class Sequence implements WaitingSequence, SpeculatingSequence {
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
  /** Every token generated so far, for the prefix cache. */
  readonly generatedIds: number[] = [];
  /** Prompt tokens served from the prefix cache. */
  cachedTokens = 0;
  /** Auto-off (see {@link AutoOffState}). */
  readonly verified: [number, number][] = [];
  coolDown = 0;
  pausesInARow = 0;

  constructor(
    readonly init: SequenceInit,
    now: number,
    order: number,
  ) {
    this.id = init.id;
    this.priority = init.priority;
    this.arrivedAt = now;
    this.order = order;
    this.sampler = new Sampler(init.params, init.seed, init.promptIds, init.constraint);
    this.stop = new StopMatcher(init.stop);
    this.eos = new Set(init.ignoreEos ? [] : init.eosTokenIds);
  }
}

/**
 * The engine loop, one readable place: schedule (who joins), run one step for every running sequence, sample,
 * check stops, emit. Sequences join and leave the running batch between any two decode steps; the scheduler
 * decides who joins, the KV rows know how a step runs over them, the sampler and stop matcher what a token means.
 */
export class GenerationLoop {
  /** The running sequences' KV, row r for `#running[r]`. */
  readonly #kv: KvRows;
  readonly #scheduler: GenerationScheduler;
  readonly #sink: LoopSink;
  readonly #maxContext: number;
  readonly #now: () => number;
  readonly #cache: PrefixCache | undefined;
  #waiting: Sequence[] = [];
  /** Running sequences, in the row order of `#kv`. */
  #running: Sequence[] = [];
  #arrivals = 0;
  /**
   * Most rows one step runs since an allocation failure split a step: doubled after every {@link CAP_PROBE_STEPS}
   * steps that went through at it, cleared when it covers the batch or the running batch empties.
   */
  #rowCap: number | undefined;
  #stepsAtCap = 0;
  /** The prefix cache was emptied in this iteration already. */
  #flushed = false;
  readonly #recovery: StepRecovery = { cacheFlushes: 0, splits: 0, failedAlone: 0 };
  readonly #speculation: SpeculativeDecoding | undefined;

  constructor(options: {
    runner: DecoderRunner | ResidentKvRunner;
    scheduler: GenerationScheduler;
    sink: LoopSink;
    maxContext: number;
    now?: () => number;
    prefixCache?: PrefixCache;
    speculation?: Speculation;
    /** For a runner that passes the KV as tensors: see the option of {@link ConcatenatedKvRows}. */
    freeNowMinBytes?: number;
  }) {
    const { runner, freeNowMinBytes } = options;
    this.#kv = isResidentKvRunner(runner)
      ? new ResidentKvRows(runner)
      : new ConcatenatedKvRows(runner, { ...(freeNowMinBytes !== undefined && { freeNowMinBytes }) });
    this.#cache = options.prefixCache;
    this.#scheduler = options.scheduler;
    this.#sink = options.sink;
    this.#maxContext = options.maxContext;
    this.#now = options.now ?? (() => performance.now());
    if (options.speculation) {
      if (!this.#kv.canVerify)
        throw new Error(
          'this model runner cannot verify draft tokens; speculative decoding needs a runner with verify steps',
        );
      this.#speculation = new SpeculativeDecoding(options.speculation);
    }
  }

  /** Sequences being decoded now. */
  get running(): number {
    return this.#running.length;
  }

  /** Sequences waiting for a slot. */
  get waiting(): number {
    return this.#waiting.length;
  }

  /**
   * The KV cache in use, 0 to 1: the positions the running sequences hold over what the loop's slots can hold (each
   * slot a full context). vLLM's `kv_cache_usage_perc`, which load balancers read as a replica's fullness.
   */
  get kvUsage(): number {
    const capacity = this.#scheduler.capacity * this.#maxContext;
    let held = 0;
    for (const length of this.#kv.lengths) held += length;
    return capacity > 0 ? Math.min(1, held / capacity) : 0;
  }

  /** How failed steps were got through so far. */
  get recovery(): Readonly<StepRecovery> {
    return this.#recovery;
  }

  /** Drafted and accepted tokens so far; undefined without speculation. */
  get speculation(): Readonly<SpeculationStats> | undefined {
    return this.#speculation?.stats;
  }

  /** Most rows a step runs while an allocation failure keeps steps split; undefined when not split. */
  get rowCap(): number | undefined {
    return this.#rowCap;
  }

  /** Queues a sequence; it joins the running batch when the scheduler admits it. */
  add(init: SequenceInit): void {
    const seq = new Sequence(init, this.#now(), this.#arrivals++);
    this.#speculation?.begin(seq);
    this.#waiting.push(seq);
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
    this.#flushed = false;
    this.#dropCancelled();
    const plan = this.#scheduler.plan(this.#waiting, this.#running.length, this.#now());
    if (plan.admit.length > 0) {
      const admitted = new Set(plan.admit.map((w) => w.id));
      const joining = this.#waiting.filter((s) => admitted.has(s.id));
      this.#waiting = this.#waiting.filter((s) => !admitted.has(s.id));
      const ordered = plan.admit.map((w) => joining.find((s) => s.id === w.id)!);
      steps.push(...(await this.#prefill(ordered)));
      this.#sink.prefillDone?.();
    }
    if (this.#running.length > 0) {
      const speculative = await this.#speculate();
      if (speculative) steps.push({ phase: 'decode', ...speculative });
      else {
        const step = await this.#decode();
        steps.push(step);
        this.#speculation?.observePlain(step);
      }
    }
    if (this.#running.length === 0) {
      this.#rowCap = undefined;
      this.#stepsAtCap = 0;
    }
    if (steps.length === 0)
      return { idle: true, ...(plan.wakeInMs !== undefined && { wakeInMs: plan.wakeInMs }), steps };
    return { idle: false, steps };
  }

  // The newcomers' rows go after the running ones, in the steps the KV rows group them into; those that end at their
  // first token leave again at the end. A part of a step that fails adds no rows, so after an allocation failure the
  // newcomers are admitted in parts; those that fail alone fail, the running rows are not touched.
  async #prefill(joining: Sequence[]): Promise<StepReport[]> {
    const newcomers = joining.map((seq): Newcomer => {
      // At least one prompt token is computed: its logits give the first generated token.
      const match = this.#cache?.match(
        seq.init.promptIds,
        seq.init.promptIds.length - 1,
        seq.init.conversationId,
        seq.init.cacheNamespace,
      );
      if (!match || match.tokens === 0) return { prompt: seq.init.promptIds };
      seq.cachedTokens = match.tokens;
      return {
        prompt: seq.init.promptIds.slice(match.tokens),
        prefix: { blocks: match.blocks, blockTokens: this.#cache!.blockTokens },
      };
    });
    const steps: StepReport[] = [];
    const rows = [...this.#running];
    const keep = rows.map((_, row) => row);
    for (const step of this.#kv.prefillSteps(newcomers)) {
      const started = this.#now();
      const group = step.members.map((i) => joining[i]!);
      const cachedTokens = group.reduce((n, s) => n + s.cachedTokens, 0);
      steps.push({
        phase: 'prefill',
        sequences: group.length,
        tokens: group.reduce((n, s) => n + s.init.promptIds.length - s.cachedTokens, 0),
        ...(cachedTokens > 0 && { cachedTokens }),
        durationMs: 0,
      });
      const parts = await this.#runSplit(
        group.map((_, i) => i),
        (members) => step.run(members),
      );
      this.#settle(parts, group, (seq, logits, k) => {
        const row = rows.push(seq) - 1;
        this.#sink.prefilled?.(seq.id, seq.cachedTokens);
        this.#retain(seq, row);
        if (this.#accept(seq, logits[k]!, this.#kv.lengths[row]!)) keep.push(row);
      });
      steps.at(-1)!.durationMs = this.#now() - started;
    }
    this.#running = rows;
    this.#keepRows(keep);
    return steps;
  }

  // One decode step over the running rows, split after an allocation failure into parts of adjacent rows. Rows that
  // fail alone are dropped, the others have their token.
  async #decode(): Promise<StepReport> {
    const started = this.#now();
    const running = this.#running;
    const parts = await this.#runSplit(
      running.map((_, row) => row),
      (rows) =>
        this.#kv.decode(
          rows,
          rows.map((r) => running[r]!.lastToken),
        ),
    );
    const keep: number[] = [];
    let ran = 0;
    this.#settle(parts, running, (seq, logits, k, row) => {
      ran++;
      if (this.#accept(seq, logits[k]!, this.#kv.lengths[row]!)) keep.push(row);
      else this.#retain(seq, row);
    });
    this.#keepRows(keep);
    return { phase: 'decode', sequences: running.length, tokens: ran, durationMs: this.#now() - started };
  }

  // Keeps the whole blocks of a sequence's KV (row `row`) in the prefix cache: its prompt after the prefill, its
  // prompt and output when it ends, so a later prompt that repeats them (the next turn of a chat) starts there.
  #retain(seq: Sequence, row: number): void {
    const cache = this.#cache;
    if (!cache) return;
    const length = this.#kv.lengths[row]!;
    if (length < cache.blockTokens) return;
    const ids = seq.generatedIds.length === 0 ? seq.init.promptIds : [...seq.init.promptIds, ...seq.generatedIds];
    cache.insert(
      ids,
      length,
      (first) => this.#kv.blockAt(row, first, cache.blockTokens),
      seq.init.conversationId,
      seq.init.cacheNamespace,
    );
  }

  // The outcome of a split step: the sequences of the parts that failed fail with their part's error; `each` gets every
  // sequence of the parts that ran, with its part's result, its row in that result and its index in `sequences`.
  #settle<R>(
    parts: readonly StepPart<R>[],
    sequences: readonly Sequence[],
    each: (seq: Sequence, result: R, row: number, index: number) => void,
  ): void {
    for (const part of parts) {
      if (!part.ok) {
        this.#sink.fail(
          part.rows.map((i) => sequences[i]!.id),
          part.error,
        );
        continue;
      }
      part.rows.forEach((index, row) => each(sequences[index]!, part.result, row, index));
    }
  }

  /**
   * Runs a step over `rows` (in chunks of the row cap while one holds). A part that fails is tried again: after an
   * allocation failure with the prefix cache emptied (once per iteration), then in two halves, down to single rows;
   * a row that fails alone is reported failed, so one bad or oversized sequence fails alone and the others go on.
   * Every part is a run of adjacent entries of `rows`, run in order (the KV rows may depend on both).
   */
  async #runSplit<R>(rows: number[], run: (rows: number[]) => Promise<R>): Promise<StepPart<R>[]> {
    const cap = this.#rowCap ?? rows.length;
    const parts: StepPart<R>[] = [];
    for (let i = 0; i < rows.length; i += cap) parts.push(...(await this.#tryPart(rows.slice(i, i + cap), run)));
    // Memory may have come back: after a run of steps that went through at the cap, try twice as many rows.
    if (
      this.#rowCap !== undefined &&
      this.#rowCap === cap &&
      parts.every((p) => p.ok) &&
      ++this.#stepsAtCap >= CAP_PROBE_STEPS
    ) {
      this.#stepsAtCap = 0;
      this.#rowCap = cap * 2 >= this.#scheduler.capacity ? undefined : cap * 2;
    }
    return parts;
  }

  async #tryPart<R>(rows: number[], run: (rows: number[]) => Promise<R>): Promise<StepPart<R>[]> {
    let error: unknown;
    try {
      return [{ ok: true, rows, result: await run(rows) }];
    } catch (err) {
      error = err;
    }
    if (isAllocationFailure(error) && this.#flushCache()) {
      try {
        return [{ ok: true, rows, result: await run(rows) }];
      } catch (err) {
        error = err;
      }
    }
    if (rows.length === 1) {
      this.#recovery.failedAlone++;
      return [{ ok: false, rows, error }];
    }
    this.#recovery.splits++;
    const half = Math.ceil(rows.length / 2);
    // Memory is short: later steps start at this size instead of failing at the full one first.
    if (isAllocationFailure(error)) {
      this.#rowCap = Math.min(this.#rowCap ?? half, half);
      this.#stepsAtCap = 0;
    }
    return [...(await this.#tryPart(rows.slice(0, half), run)), ...(await this.#tryPart(rows.slice(half), run))];
  }

  // Frees the prefix cache's memory for a step that could not allocate (at most once per iteration); false when
  // there was nothing to free.
  #flushCache(): boolean {
    const cache = this.#cache;
    if (!cache || this.#flushed || cache.stats.bytes === 0) return false;
    this.#flushed = true;
    const capacity = cache.stats.capacityBytes;
    cache.resize(0);
    cache.resize(capacity);
    this.#recovery.cacheFlushes++;
    return true;
  }

  // A speculative decode step in place of the plain one, when speculation is on and applies (see
  // SpeculativeDecoding.step); never while an allocation failure keeps steps split.
  async #speculate(): Promise<SpeculativeStep | undefined> {
    const speculation = this.#speculation;
    if (!speculation || this.#rowCap !== undefined) return undefined;
    return speculation.step(this.#running, {
      kv: this.#kv,
      maxContext: this.#maxContext,
      now: this.#now,
      cancelled: (seq) => this.#sink.finish(seq.id, 'cancelled', '', seq.generated),
      emit: (seq, token, cached, row) => this.#emit(seq, token, cached, row),
      retain: (seq, row) => this.#retain(seq, row),
      keepRows: (rows) => this.#keepRows(rows),
    });
  }

  /** Samples a sequence's next token and applies the stop rules; true while the sequence goes on. */
  #accept(seq: Sequence, logits: LogitsRow, cached: number): boolean {
    if (seq.cancelled) {
      this.#sink.finish(seq.id, 'cancelled', '', seq.generated);
      return false;
    }
    const token = seq.sampler.sample(logits);
    seq.sampler.accept(token);
    return this.#emit(seq, token, cached, logits);
  }

  /**
   * Appends a sampled token (the sampler has accepted it) and applies the stop rules; true while the sequence goes on.
   * `row`: the logits it was sampled from, for the log-probs a sequence asks for.
   */
  #emit(seq: Sequence, token: number, cached: number, row: LogitsRow): boolean {
    seq.generated++;
    seq.lastToken = token;
    seq.generatedIds.push(token);
    if (seq.eos.has(token)) return this.#end(seq, 'stop');
    const check = seq.stop.push(seq.init.decoder.push(token));
    const logprobs = seq.init.logprobs === undefined ? undefined : tokenLogprobs(row, token, seq.init.logprobs);
    this.#sink.token(seq.id, token, check.text, logprobs);
    if (check.stop !== undefined) {
      this.#sink.finish(seq.id, 'stop_sequence', '', seq.generated, check.stop);
      return false;
    }
    // A constrained value that is complete and can take nothing more ends as the end-of-sequence token would end it.
    if (seq.sampler.constraintFinished) return this.#end(seq, 'stop');
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
      if (seq.cancelled) {
        this.#retain(seq, row);
        this.#sink.finish(seq.id, 'cancelled', '', seq.generated);
      } else keep.push(row);
    });
    this.#keepRows(keep);
  }

  // Ends a step: these rows stay, in their order; the others' KV is dropped (and what the proposer kept for them).
  #keepRows(rows: number[]): void {
    this.#kv.keepRows(rows);
    const speculation = this.#speculation;
    if (speculation?.speculation.proposer.release && rows.length !== this.#running.length) {
      const staying = new Set(rows);
      this.#running.forEach((seq, row) => {
        if (!staying.has(row)) speculation.release(seq.id);
      });
    }
    if (rows.length !== this.#running.length) this.#running = rows.map((r) => this.#running[r]!);
  }
}
