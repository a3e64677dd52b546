import type { DraftProposer, DraftProposerFactory } from '@nucleus/sdk';

/** Settings of the n-gram (prompt lookup) proposer. */
export interface NgramOptions {
  /** Shortest suffix that is looked up. */
  promptLookupMin: number;
  /** Longest suffix that is looked up; longer matches are tried first. */
  promptLookupMax: number;
}

export const DEFAULT_NGRAM_OPTIONS: NgramOptions = { promptLookupMin: 2, promptLookupMax: 4 };

/**
 * Prompt lookup (vLLM's `ngram` method): the last n tokens of the sequence are searched for earlier in the prompt and
 * the output, and the tokens that followed them there are the draft. No draft model: it pays off where the output
 * repeats what came before (code edits, extraction, quoting, summaries, a model looping). The longest suffix with a
 * match wins; among its matches the most recent one, which is the best guess when the model repeats itself.
 */
export class NgramProposer implements DraftProposer {
  readonly #min: number;
  readonly #max: number;

  constructor(options: Partial<NgramOptions> = {}) {
    const { promptLookupMin: min, promptLookupMax: max } = { ...DEFAULT_NGRAM_OPTIONS, ...options };
    if (!Number.isInteger(min) || min < 1)
      throw new Error(`promptLookupMin must be a whole number of at least 1, got ${min}`);
    if (!Number.isInteger(max) || max < min)
      throw new Error(`promptLookupMax must be a whole number of at least promptLookupMin (${min}), got ${max}`);
    this.#min = min;
    this.#max = max;
  }

  propose(tokens: readonly number[], max: number): number[] {
    const len = tokens.length;
    if (max <= 0) return [];
    for (let n = Math.min(this.#max, len - 1); n >= this.#min; n--) {
      const suffix = len - n;
      // A match ends before the suffix starts at the latest, so at least one token follows it.
      for (let start = suffix - 1; start >= 0; start--) {
        let i = 0;
        while (i < n && tokens[start + i] === tokens[suffix + i]) i++;
        if (i < n) continue;
        const from = start + n;
        return tokens.slice(from, Math.min(len, from + max)) as number[];
      }
    }
    return [];
  }
}

/** A proposer for a generation worker: what it gets when it imports this module (see `DraftProposerSpec.module`). */
const createNgramProposer: DraftProposerFactory = (options) => new NgramProposer(options as Partial<NgramOptions>);
export default createNgramProposer;
