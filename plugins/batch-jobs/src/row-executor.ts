import { NucleusError } from '@nucleus/sdk';
import type { InputRow, RowError } from './row-source.js';

/** Runs a group of consecutive rows and gives one output line per row, in order; a row's failure is its line. */
export interface RowExecutor {
  /** Rows given to one `execute` call. */
  readonly chunkRows: number;
  execute(rows: InputRow[], signal: AbortSignal): Promise<string[]>;
}

/** A value, or the row error it failed with. */
export type Settled<T> = { ok: true; value: T } | { ok: false; error: RowError };

/** Errors that say "not now" (a full queue, a model reloading): a job waits and tries again rather than failing rows. */
const TRANSIENT = new Set(['queue_full', 'queue_timeout', 'model_not_ready', 'model_unloading', 'circuit_open']);

/** The row error for a thrown value. */
export function errorOf(err: unknown): RowError {
  if (err instanceof NucleusError) return { code: err.code, status: err.status, message: err.message };
  return { code: 'internal_error', status: 500, message: (err as Error)?.message ?? String(err) };
}

/**
 * Runs `fn`, waiting and trying again while the engine says it is busy (up to about a minute), so a job yields to
 * interactive traffic instead of failing rows; other errors are thrown at once.
 */
export async function whenReady<T>(fn: () => Promise<T>, signal: AbortSignal): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await fn();
    } catch (err) {
      const code = err instanceof NucleusError ? err.code : undefined;
      if (code === undefined || !TRANSIENT.has(code) || attempt >= 60 || signal.aborted) throw err;
      await new Promise((r) => setTimeout(r, Math.min(1000, 20 * 2 ** attempt)));
    }
  }
}
