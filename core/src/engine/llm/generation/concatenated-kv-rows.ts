import { blockFromRow, pastFromBlocks } from '../prefix-cache/kv-blocks.js';
import type { DecoderRunner } from './decoder-session.js';
import { KvBatch, type KvArray, type RowSource } from './kv-batch.js';
import type { KvRows, Newcomer, PrefillStep } from './kv-rows.js';
import type { LogitsRow } from './sampler.js';

/** See the `freeNowMinBytes` option of {@link ConcatenatedKvRows}. */
export const FREE_NOW_MIN_BYTES = 256 * 1024;

/**
 * The rows of a runner that takes the KV cache in and gives it back as tensors (generic graphs): one left-padded
 * {@link KvBatch} between steps, whose rows a step's outputs replace. During a step rows may come from several batches
 * (the running one, a prefill's, the parts of a split step); the step's end gathers them into one again, only when
 * they are not one batch's rows as they are already, and frees the batches it no longer needs.
 */
export class ConcatenatedKvRows implements KvRows {
  readonly #runner: DecoderRunner;
  readonly #freeNowMinBytes: number;
  /** Where each row's KV is now. */
  #rows: RowSource[] = [];
  #lengths: number[] = [];
  /** Set while the rows are this batch's rows, in its order: a step over all of them runs it as it is. */
  #batch: KvBatch | undefined;
  /** Batches made for the rows that go back when a step ends, unless the rows are then one of them. */
  readonly #held = new Set<KvBatch>();

  constructor(
    runner: DecoderRunner,
    options: {
      /**
       * KV caches this large or larger are freed as soon as they are replaced (see `KvBatch.release`); smaller ones,
       * whose memory hardly brings a collection sooner, are left to the garbage collector, which costs less than
       * freeing them at every step. Default {@link FREE_NOW_MIN_BYTES}.
       */
      freeNowMinBytes?: number;
    } = {},
  ) {
    this.#runner = runner;
    this.#freeNowMinBytes = options.freeNowMinBytes ?? FREE_NOW_MIN_BYTES;
  }

  get lengths(): readonly number[] {
    return this.#lengths;
  }

  get canVerify(): boolean {
    return this.#runner.verify !== undefined;
  }

  // Newcomers that start with cached blocks are prefilled from that KV, apart from those starting from nothing, so
  // neither group pays for the other's padding.
  prefillSteps(newcomers: readonly Newcomer[]): PrefillStep[] {
    const cold: number[] = [];
    const warm: number[] = [];
    newcomers.forEach((n, i) => (n.prefix ? warm : cold).push(i));
    // Copied out now: prefilling the cold group may evict the blocks the warm one starts from.
    const past =
      warm.length > 0
        ? pastFromBlocks(
            this.#runner.layout,
            warm.map((i) => newcomers[i]!.prefix!.blocks),
            newcomers[warm[0]!]!.prefix!.blockTokens,
          )
        : undefined;
    if (past) this.#held.add(past);
    const steps: PrefillStep[] = [];
    for (const [group, from] of [
      [cold, undefined],
      [warm, past],
    ] as const) {
      if (group.length === 0) continue;
      steps.push({
        members: group,
        run: async (members) => {
          const result = await this.#runner.prefill(
            members.map((k) => newcomers[group[k]!]!.prompt),
            from && members.length < group.length
              ? KvBatch.gather(
                  this.#runner.layout,
                  members.map((row) => ({ batch: from, row })),
                )
              : from,
          );
          this.#held.add(result.kv);
          this.#batch = undefined;
          members.forEach((_, row) => {
            this.#rows.push({ batch: result.kv, row });
            this.#lengths.push(result.kv.lengths[row]!);
          });
          return result.logits;
        },
      });
    }
    return steps;
  }

  async decode(rows: readonly number[], tokens: readonly number[]): Promise<LogitsRow[]> {
    const result = await this.#runner.decode(this.#input(rows), tokens);
    this.#replace(rows, result.kv);
    return result.logits;
  }

  // One width for all rows: shorter drafts are padded with their last token, whose logits are never read.
  async verify(tokens: readonly (readonly number[])[]): Promise<LogitsRow[][]> {
    const width = Math.max(...tokens.map((t) => t.length));
    const padded = tokens.map((t) => {
      const row = [...t];
      while (row.length < width) row.push(row[row.length - 1]!);
      return row;
    });
    const rows = this.#rows.map((_, row) => row);
    const result = await this.#runner.verify!(this.#input(rows), padded);
    this.#replace(rows, result.kv);
    return result.logits;
  }

  truncate(lengths: readonly number[]): void {
    if (lengths.every((n, row) => n === this.#lengths[row])) return;
    this.#settle(
      KvBatch.gather(
        this.#runner.layout,
        this.#rows.map((s, row) => ({ ...s, length: lengths[row]! })),
      ),
    );
  }

  keepRows(rows: readonly number[]): void {
    const kept = rows.map((r) => this.#rows[r]!);
    if (kept.length === 0) this.#settle(undefined);
    else if (this.#batch && rows.length === this.#rows.length) this.#settle(this.#batch);
    else this.#settle(wholeBatch(kept) ?? KvBatch.gather(this.#runner.layout, kept));
  }

  blockAt(row: number, first: number, blockTokens: number): KvArray {
    const source = this.#rows[row]!;
    return blockFromRow(source.batch, source.row, first, blockTokens);
  }

  // The past of a step over these rows: the running batch as it is, or the rows gathered into one.
  #input(rows: readonly number[]): KvBatch {
    if (this.#batch && rows.length === this.#rows.length) return this.#batch;
    return KvBatch.gather(
      this.#runner.layout,
      rows.map((r) => this.#rows[r]!),
    );
  }

  // These rows are now the rows of `kv`, in order.
  #replace(rows: readonly number[], kv: KvBatch): void {
    this.#held.add(kv);
    rows.forEach((r, i) => {
      this.#rows[r] = { batch: kv, row: i };
      this.#lengths[r] = kv.lengths[i]!;
    });
    this.#batch = rows.length === this.#rows.length ? kv : undefined;
  }

  // The rows become those of `next`; every other batch made for them goes back.
  #settle(next: KvBatch | undefined): void {
    for (const kv of this.#held) if (kv !== next && kv.bytes >= this.#freeNowMinBytes) kv.release();
    this.#held.clear();
    this.#batch = next;
    this.#rows = next ? next.lengths.map((_, row) => ({ batch: next, row })) : [];
    this.#lengths = next ? [...next.lengths] : [];
    if (next) this.#held.add(next);
  }
}

// The batch these rows are, all of its rows in its order and whole; undefined when they are not.
function wholeBatch(rows: readonly RowSource[]): KvBatch | undefined {
  const batch = rows[0]?.batch;
  if (!batch || batch.rows !== rows.length) return undefined;
  return rows.every((s, i) => s.batch === batch && s.row === i && s.length === undefined) ? batch : undefined;
}
