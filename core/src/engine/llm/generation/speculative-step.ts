import type { DraftProposal, DraftProposer, SpeculationAutoOff } from '@nucleus/sdk';
import type { KvRows } from './kv-rows.js';
import { isGreedy, type LogitsRow, type Sampler, type SamplingParams } from './sampler.js';
import { SpeculationAutoOffPolicy, type AutoOffState } from './speculation-auto-off.js';

/** Speculative decoding in the loop: who proposes drafts, how many tokens at most, up to what batch. */
export interface Speculation {
  /** The method's name, for telemetry (`ngram` …). */
  method: string;
  proposer: DraftProposer;
  /** Most draft tokens verified per sequence and step (k). */
  numSpeculativeTokens: number;
  /** Speculate only while at most this many sequences run. */
  maxBatch: number;
  /** Pauses drafting for a request whose drafts are mostly rejected; absent: never paused. */
  autoOff?: SpeculationAutoOff;
}

/** What speculation did, counted since the loop started. */
export interface SpeculationStats {
  /** Drafts verified: one per sequence and step that had one. */
  drafts: number;
  /** Draft tokens verified. */
  draftTokens: number;
  /** Draft tokens the model agreed with (each one a token gained over plain decoding). */
  acceptedTokens: number;
  /** Times auto-off paused drafting for a request whose acceptance rate fell below the threshold. */
  pauses: number;
  /** Tokens produced and ms spent by speculative steps (drafting included). */
  specTokens: number;
  specMs: number;
  /** Tokens produced and ms spent by plain decode steps the loop ran while it could have speculated (few enough rows). */
  plainTokens: number;
  plainMs: number;
  /** Calls of the proposer, and the ms they took (a draft model's steps, its catch-up after a pause included). */
  proposals: number;
  draftMs: number;
  /** Rows of verify steps (with a draft or not), and rows of plain decode steps while it could have speculated. */
  verifyRows: number;
  plainRows: number;
}

/**
 * The speed-up factor of speculation (seed 004 R12.4): tokens per ms of its steps over tokens per ms of plain decode
 * steps at batch sizes where it applies; undefined until both kinds of step ran.
 */
export function speedupFactor(stats: Readonly<SpeculationStats>): number | undefined {
  if (stats.specMs <= 0 || stats.plainMs <= 0 || stats.plainTokens <= 0) return undefined;
  return stats.specTokens / stats.specMs / (stats.plainTokens / stats.plainMs);
}

/** A running sequence as a speculative step sees it. */
export interface SpeculatingSequence extends AutoOffState {
  readonly id: number;
  readonly init: { readonly promptIds: readonly number[]; readonly maxTokens: number; readonly params: SamplingParams };
  readonly sampler: Sampler;
  readonly generatedIds: readonly number[];
  readonly generated: number;
  readonly lastToken: number;
  readonly cancelled: boolean;
}

/** What a speculative step needs of the loop it runs in. */
export interface SpeculationHost<S extends SpeculatingSequence> {
  /** The running sequences' KV, row r for `running[r]`. */
  readonly kv: KvRows;
  readonly maxContext: number;
  now(): number;
  /** Ends a cancelled sequence. */
  cancelled(seq: S): void;
  /** Appends a sampled token and applies the stop rules (see `GenerationLoop`); true while the sequence goes on. */
  emit(seq: S, token: number, cached: number, row: LogitsRow): boolean;
  /** Keeps a sequence's KV (row `row`) in the prefix cache. */
  retain(seq: S, row: number): void;
  /** Ends the step: these rows stay, in their order. */
  keepRows(rows: number[]): void;
}

/** What a speculative step ran: over how many sequences, the tokens it produced, how long it took. */
export interface SpeculativeStep {
  sequences: number;
  tokens: number;
  durationMs: number;
}

/**
 * Speculative decoding of one loop: the proposer, its auto-off policy and its counters, and the speculative decode
 * step the loop runs in place of a plain one when it applies.
 */
export class SpeculativeDecoding {
  readonly stats: SpeculationStats = {
    drafts: 0,
    draftTokens: 0,
    acceptedTokens: 0,
    pauses: 0,
    specTokens: 0,
    specMs: 0,
    plainTokens: 0,
    plainMs: 0,
    proposals: 0,
    draftMs: 0,
    verifyRows: 0,
    plainRows: 0,
  };
  readonly #autoOff: SpeculationAutoOffPolicy | undefined;

  constructor(readonly speculation: Speculation) {
    const { autoOff, numSpeculativeTokens } = speculation;
    if (autoOff) this.#autoOff = new SpeculationAutoOffPolicy(autoOff, numSpeculativeTokens);
  }

  /** A sequence joined the loop. */
  begin(seq: AutoOffState): void {
    this.#autoOff?.begin(seq);
  }

  /** A plain decode step ran: counted where speculation could have run instead (few enough rows). */
  observePlain(step: SpeculativeStep): void {
    if (step.sequences > this.speculation.maxBatch) return;
    this.stats.plainTokens += step.tokens;
    this.stats.plainMs += step.durationMs;
    this.stats.plainRows += step.sequences;
    this.#autoOff?.observePlain(step.durationMs, step.sequences);
  }

  /** A sequence left the loop: what the proposer kept for it goes. */
  release(sequence: number): void {
    this.speculation.proposer.release?.(sequence);
  }

  /**
   * A speculative decode step, when few enough sequences run and some have drafts: one run over each sequence's last
   * token and its drafts, then per sequence the longest prefix of drafts the model agrees with and the model's own
   * token after it, emitted in order with the usual stop rules; the KV cache is cut back to the tokens kept.
   * Undefined when it does not apply or its run failed (the plain decode step then runs, with its recovery); the
   * cache is untouched then.
   */
  async step<S extends SpeculatingSequence>(
    running: readonly S[],
    host: SpeculationHost<S>,
  ): Promise<SpeculativeStep | undefined> {
    const spec = this.speculation;
    if (running.length > spec.maxBatch) return undefined;
    const started = host.now();
    const lengths = host.kv.lengths;
    const drafts: number[][] = [];
    const probabilities: (readonly Float32Array[] | undefined)[] = [];
    let draftMs = 0;
    try {
      for (const [row, seq] of running.entries()) {
        // Room for the drafts and the token after them: within max_tokens and the context window.
        const room = Math.min(
          spec.numSpeculativeTokens,
          seq.init.maxTokens - seq.generated - 1,
          host.maxContext - lengths[row]! - 1,
        );
        // A constrained sequence does not speculate: its drafts would need the mask at every drafted position.
        if (room <= 0 || seq.cancelled || seq.sampler.constrained || this.#autoOff?.paused(seq)) {
          drafts.push([]);
          probabilities.push(undefined);
          continue;
        }
        const proposing = host.now();
        const proposed = await spec.proposer.propose([...seq.init.promptIds, ...seq.generatedIds], room, {
          sequence: seq.id,
          greedy: isGreedy(seq.init.params),
          temperature: seq.init.params.temperature,
          random: () => seq.sampler.random(),
        });
        draftMs += host.now() - proposing;
        this.stats.proposals++;
        const proposal: DraftProposal = isProposal(proposed) ? proposed : { tokens: proposed };
        drafts.push(proposal.tokens.slice(0, room));
        probabilities.push(proposal.probabilities);
      }
    } catch {
      // A proposer that fails costs its speedup, never a generation.
      return undefined;
    } finally {
      this.stats.draftMs += draftMs;
    }
    if (drafts.every((d) => d.length === 0)) return undefined;
    const before = [...lengths];
    let logits: LogitsRow[][];
    const verifying = host.now();
    try {
      logits = await host.kv.verify(running.map((seq, row) => [seq.lastToken, ...drafts[row]!]));
    } catch {
      return undefined;
    }
    this.stats.verifyRows += running.length;
    this.#autoOff?.observeSpeculative(
      host.now() - verifying,
      running.length,
      draftMs,
      drafts.reduce((n, d) => n + d.length, 0),
    );
    const keep: number[] = [];
    const ended: number[] = [];
    const kept: number[] = [];
    let tokens = 0;
    running.forEach((seq, row) => {
      const draft = drafts[row]!;
      if (draft.length > 0) {
        this.stats.drafts++;
        this.stats.draftTokens += draft.length;
      }
      if (seq.cancelled) {
        host.cancelled(seq);
        kept.push(before[row]! + 1);
        ended.push(row);
        return;
      }
      // The tokens to append: drafts while the model agrees, then the model's own token.
      const out: number[] = [];
      for (let i = 0; i <= draft.length; i++) {
        const token =
          i < draft.length
            ? seq.sampler.verify(logits[row]![i]!, draft[i]!, probabilities[row]?.[i])
            : seq.sampler.sample(logits[row]![i]!);
        seq.sampler.accept(token);
        out.push(token);
        if (i < draft.length && token !== draft[i]) break;
      }
      this.stats.acceptedTokens += out.length - 1;
      if (draft.length > 0 && this.#autoOff?.record(seq, draft.length, out.length - 1)) this.stats.pauses++;
      let emitted = 0;
      let goesOn = true;
      for (const token of out) {
        emitted++;
        tokens++;
        // Token `emitted` puts the KV at the old length, the last token and the drafts before it.
        goesOn = host.emit(seq, token, before[row]! + emitted, logits[row]![emitted - 1]!);
        if (!goesOn) break;
      }
      kept.push(before[row]! + emitted);
      if (goesOn) keep.push(row);
      else ended.push(row);
    });
    host.kv.truncate(kept);
    for (const row of ended) host.retain(running[row]!, row);
    host.keepRows(keep);
    const durationMs = host.now() - started;
    this.stats.specTokens += tokens;
    this.stats.specMs += durationMs;
    return { sequences: running.length, tokens, durationMs };
  }
}

function isProposal(proposed: readonly number[] | DraftProposal): proposed is DraftProposal {
  return !Array.isArray(proposed);
}
