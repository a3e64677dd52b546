import { performance } from 'node:perf_hooks';
import {
  NucleusError,
  noProgress,
  type BatchRunner,
  type BatchRunOptions,
  type BatchRunSummary,
  type GenerationService,
  type InferenceService,
} from '@nucleus/sdk';
import { CheckpointedOutput } from './checkpointed-output.js';
import { LlmRowExecutor, type BatchEndpoint } from './llm-rows.js';
import type { RowExecutor } from './row-executor.js';
import type { InteractiveTraffic } from './interactive-traffic.js';
import { countRows, inputFormat, readRows, type InputRow } from './row-source.js';
import { TensorRowExecutor } from './tensor-rows.js';

/** Rows in a chunk while the job yields to interactive requests. */
const YIELD_CHUNK_ROWS = 64;
/** Interactive traffic counts as gone once no request has been in flight for this long. */
const QUIET_MS = 250;

/** How a runner sizes its work. */
export interface BatchJobSettings {
  chunkRows: number;
  inFlight: number;
  llmInFlight: number;
  /** Whether a job yields to interactive requests (see {@link InteractiveTraffic}). */
  yieldToInteractive: boolean;
  /** The longest a job waits for interactive traffic to pause before it runs its next chunk anyway. */
  yieldMaxWaitMs: number;
}

/** What a server-side job adds to a run: the endpoint its rows must address, and a count of rows as they finish. */
export interface JobRunOptions extends BatchRunOptions {
  endpoint?: BatchEndpoint;
  /** Takes the model from each row's body (OpenAI batch lines) instead of `model`. */
  modelPerRow?: boolean;
  onRows?(succeeded: number, failed: number): void;
}

/**
 * Reads rows as a stream, runs them through the engines in chunks with a bounded number in flight, and writes one
 * line per row in input order to the output, which is the checkpoint a resume continues from. Memory stays bounded
 * by the window (in-flight chunks and the lines waiting for an earlier chunk), whatever the size of the file.
 *
 * While interactive traffic goes on (`traffic`: a request in flight, or one that ended moments ago), a job keeps one
 * small chunk in flight and starts its next only when no interactive request is in flight (or `yieldMaxWaitMs` has
 * passed): it runs a chunk at a time in the gaps interactive traffic leaves.
 */
export class BatchJobRunner implements BatchRunner {
  readonly name = 'batch-jobs';

  constructor(
    private readonly engines: { inference?: InferenceService | undefined; generation?: GenerationService | undefined },
    private readonly settings: () => BatchJobSettings,
    private readonly traffic?: InteractiveTraffic,
  ) {}

  async run(options: JobRunOptions): Promise<BatchRunSummary> {
    const started = performance.now();
    const executor = this.#executor(options);
    const format = inputFormat(options.input, options.format);
    const total = await countRows(options.input, format);
    const output = await CheckpointedOutput.open(options.output, options.resume ?? true);
    const resumedFrom = output.resumedFrom;
    const progress = options.progress ?? noProgress;
    const signal = options.signal ?? new AbortController().signal;
    const traffic = this.traffic;
    const yielding = (): boolean => traffic?.active(QUIET_MS) === true && this.settings().yieldToInteractive;
    const full = executor.chunkRows === 1 ? this.settings().llmInFlight : this.settings().inFlight;
    const window = (): number => (yielding() ? 1 : full);
    let succeeded = 0;
    let failed = 0;
    const inFlight = new Set<Promise<void>>();
    let fatal: unknown;
    const launch = (chunk: InputRow[]): void => {
      const task = executor.execute(chunk, signal).then(
        (lines) => {
          for (const line of lines) isErrorLine(line) ? failed++ : succeeded++;
          output.put(chunk[0]!.row, lines);
          progress.advance(lines.length);
          options.onRows?.(succeeded, failed);
        },
        (err: unknown) => {
          fatal ??= err;
        },
      );
      inFlight.add(task);
      void task.finally(() => inFlight.delete(task));
    };
    progress.start(Math.max(0, total - resumedFrom), `batch ${options.model}`, 'rows');
    try {
      let chunk: InputRow[] = [];
      let size = executor.chunkRows;
      for await (const row of readRows(options.input, format, resumedFrom)) {
        if (signal.aborted || fatal !== undefined) break;
        // Smaller chunks while yielding: a chunk's parsing and result lines are a slice of event-loop time that an
        // interactive request arriving meanwhile waits behind.
        if (chunk.length === 0) size = yielding() ? Math.min(executor.chunkRows, YIELD_CHUNK_ROWS) : executor.chunkRows;
        chunk.push(row);
        if (chunk.length < size) continue;
        launch(chunk);
        chunk = [];
        while (inFlight.size >= window()) await Promise.race(inFlight);
        await output.drained();
        if (yielding()) await traffic!.pause(this.settings().yieldMaxWaitMs, signal);
      }
      if (chunk.length > 0 && !signal.aborted && fatal === undefined) launch(chunk);
      await Promise.all(inFlight);
      if (fatal !== undefined) throw fatal;
    } finally {
      await Promise.allSettled(inFlight);
      await output.close();
      progress.done();
    }
    return {
      rows: output.rows,
      succeeded,
      failed,
      resumedFrom,
      complete: output.rows >= total,
      seconds: (performance.now() - started) / 1000,
    };
  }

  #executor(options: JobRunOptions): RowExecutor {
    const { inference, generation } = this.engines;
    if (options.modelPerRow && generation) return new LlmRowExecutor(generation, undefined, options.endpoint);
    const tensor = inference?.list().some((m) => m.name === options.model);
    if (tensor && inference)
      return new TensorRowExecutor(inference, options.model, options.version, this.settings().chunkRows);
    const llm = generation?.list().some((m) => m.name === options.model);
    if (llm && generation) return new LlmRowExecutor(generation, options.model, options.endpoint);
    const known = [...(inference?.list() ?? []), ...(generation?.list() ?? [])].map((m) => m.name);
    throw new NucleusError(
      404,
      'model_not_found',
      `no model ${options.model} is served; known: ${[...new Set(known)].join(', ') || 'none'}`,
    );
  }
}

/** Whether an output line is an error row (`{"row": n, "error": …}`, the `error` key right after `row`). */
export function isErrorLine(line: string): boolean {
  return /^\{"row":\d+,"error":/.test(line);
}
