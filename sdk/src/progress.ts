/**
 * What a {@link Progress} counts, so it can be shown as `1.2 / 4.0 GiB` or `12 / 40`; `rows` (batch jobs) also shows
 * the rate in rows/s and the time left.
 */
export type ProgressUnit = 'bytes' | 'items' | 'rows';

/**
 * How far one long operation has got: hashing a model file, building a graph from GGUF, quantizing, downloading. The
 * server shows it as a redrawn line on a terminal and as a log line every few seconds otherwise; operations that end
 * within about two seconds show nothing. Calls are cheap: call `advance` as often as the work allows.
 *
 * ```ts
 * progress.start(tensors.length, `quantizing ${model}`);
 * for (const t of tensors) { quantize(t); progress.advance(1); }
 * progress.done();
 * ```
 */
export interface Progress {
  /** Begins the operation: `total` units to do (0 when unknown), `label` says what in a few words. */
  start(total: number, label: string, unit?: ProgressUnit): void;
  /** `units` more are done. */
  advance(units: number): void;
  /** The operation ended, finished or failed; a terminal line is cleared. Further calls do nothing. */
  done(): void;
}

/** A {@link Progress} that shows nothing: what code given none uses. */
export const noProgress: Progress = Object.freeze({ start() {}, advance() {}, done() {} });
