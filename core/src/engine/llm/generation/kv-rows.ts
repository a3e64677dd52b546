import type { CachedPrefix } from './contrib-session.js';
import type { KvArray } from './kv-batch.js';
import type { LogitsRow } from './sampler.js';

/** A sequence joining the running rows: the prompt tokens to compute, after its cached prefix when it has one. */
export interface Newcomer {
  prompt: readonly number[];
  prefix?: CachedPrefix;
}

/** One prefill step over some newcomers; how a layout groups them is its own business (see {@link KvRows.prefillSteps}). */
export interface PrefillStep {
  /** The newcomers this step prefills, as indices into the list given to {@link KvRows.prefillSteps}, in order. */
  readonly members: readonly number[];
  /**
   * Prefills the members at these indices (into `members`, ascending and adjacent) and appends their rows after the
   * others, in that order; the logits of each one's last position. A run that fails adds no rows, so it can be tried
   * again, also over fewer members.
   */
  run(members: readonly number[]): Promise<LogitsRow[]>;
}

/**
 * The KV cache of the running batch, by row: row r is the loop's r-th running sequence, and rows a prefill adds come
 * after the running ones. The loop names rows and reads their lengths; how the KV is held — kept resident in buffers
 * the runner owns, or passed to and from the runner as tensors concatenated into one left-padded batch — is the
 * implementation's. Every step ends with {@link KvRows.keepRows}, which is where rows leave and memory a step no
 * longer needs goes back.
 */
export interface KvRows {
  /** Tokens cached per row, in row order. */
  readonly lengths: readonly number[];
  /** Whether the rows take verify steps (speculative decoding). */
  readonly canVerify: boolean;
  /**
   * The prefill steps for these newcomers. What a prefix needs from the prefix cache is taken now: a step may evict
   * the blocks a later one starts from.
   */
  prefillSteps(newcomers: readonly Newcomer[]): PrefillStep[];
  /**
   * Appends one token to each of these rows (ascending and adjacent) and gives each one's logits. A step that fails
   * leaves the rows as they were, so it can be tried again, also over fewer rows.
   */
  decode(rows: readonly number[], tokens: readonly number[]): Promise<LogitsRow[]>;
  /**
   * Appends to every row its tokens (the last token and its drafts) and gives the logits of every new position,
   * `logits[row][i]` after the row's i-th new token. One that fails leaves the rows as they were.
   */
  verify(tokens: readonly (readonly number[])[]): Promise<LogitsRow[][]>;
  /** Cuts each row back to its first `lengths[row]` tokens (a verify step's rejected drafts). */
  truncate(lengths: readonly number[]): void;
  /** Ends a step: these rows (ascending) stay, moved down to rows 0..n−1 in that order; the others are dropped. */
  keepRows(rows: readonly number[]): void;
  /** A prefix-cache block: tokens `first .. first + blockTokens` of row `row`, every layer (see `kv-blocks.ts`). */
  blockAt(row: number, first: number, blockTokens: number): KvArray;
}
