import type { ResidentKvRunner } from './contrib-session.js';
import type { KvArray } from './kv-batch.js';
import type { KvRows, Newcomer, PrefillStep } from './kv-rows.js';
import type { LogitsRow } from './sampler.js';

/**
 * The rows of a runner that keeps the KV cache itself (contrib graphs): each step appends to the runner's buffers in
 * place, so the rows are only named here. All newcomers are admitted in one step; the runner writes each one that
 * starts from a cached prefix after that prefix.
 */
export class ResidentKvRows implements KvRows {
  readonly #runner: ResidentKvRunner;

  constructor(runner: ResidentKvRunner) {
    this.#runner = runner;
  }

  get lengths(): readonly number[] {
    return this.#runner.lengths;
  }

  get canVerify(): boolean {
    return this.#runner.verify !== undefined && this.#runner.truncate !== undefined;
  }

  prefillSteps(newcomers: readonly Newcomer[]): PrefillStep[] {
    const runner = this.#runner;
    return [
      {
        members: newcomers.map((_, i) => i),
        // The prefix blocks are held here, so they stay even when an allocation failure empties the cache.
        run: (members) =>
          runner.admit(
            members.map((i) => newcomers[i]!.prompt),
            members.map((i) => newcomers[i]!.prefix),
          ),
      },
    ];
  }

  // The runner decodes a range of rows in place, the others keep their length.
  decode(rows: readonly number[], tokens: readonly number[]): Promise<LogitsRow[]> {
    return this.#runner.decode(tokens, rows[0]);
  }

  // One row at a time (ORT runs a multi-token step over a non-empty cache at batch 1); a failure cuts back the rows
  // that had grown already.
  async verify(tokens: readonly (readonly number[])[]): Promise<LogitsRow[][]> {
    const runner = this.#runner;
    const before = [...runner.lengths];
    const logits: LogitsRow[][] = [];
    try {
      for (const [row, t] of tokens.entries()) logits.push(await runner.verify!(row, t));
    } catch (err) {
      before.forEach((n, row) => runner.truncate!(row, Math.min(n, runner.lengths[row]!)));
      throw err;
    }
    return logits;
  }

  truncate(lengths: readonly number[]): void {
    lengths.forEach((n, row) => this.#runner.truncate!(row, n));
  }

  keepRows(rows: readonly number[]): void {
    if (rows.length !== this.#runner.lengths.length) this.#runner.keepRows(rows);
  }

  blockAt(row: number, first: number, blockTokens: number): KvArray {
    return this.#runner.blockAt(row, first, blockTokens);
  }
}
