import type { Progress } from './progress.js';

/** One offline batch job over a file of rows (`nucleus batch run`). */
export interface BatchRunOptions {
  /** A tensor model or an LLM the engines serve. */
  model: string;
  version?: string;
  /** JSONL (one row per line) or CSV with a header (tensor models); the format follows the extension unless `format`. */
  input: string;
  /** JSONL written in input order: one line per input row, a result or `{"row": n, "error": {...}}`. */
  output: string;
  format?: 'jsonl' | 'csv';
  /** Continue a job whose output file holds the first rows already (the output is the checkpoint); default true. */
  resume?: boolean;
  progress?: Progress;
  /** Aborting stops reading, lets the rows in flight finish and writes them, then resolves. */
  signal?: AbortSignal;
}

/** What a batch run did. */
export interface BatchRunSummary {
  /** Rows in the output file now (done before a resume included). */
  rows: number;
  /** Rows this run answered and failed. */
  succeeded: number;
  failed: number;
  /** Rows already in the output when the run began, so skipped in the input. */
  resumedFrom: number;
  /** False when the run was stopped before the input ended. */
  complete: boolean;
  seconds: number;
}

/** Runs offline batch jobs in this process, at low priority, through the engines' batching and workers. */
export interface BatchRunner {
  readonly name: string;
  run(options: BatchRunOptions): Promise<BatchRunSummary>;
}
