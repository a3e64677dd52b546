import { createReadStream, createWriteStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { once } from 'node:events';
import { badRequest, type Logger } from '@nucleus/sdk';
import { isErrorLine, type BatchJobRunner } from './batch-job-runner.js';
import { BatchStore, now, type StoredBatch } from './batch-store.js';
import { BATCH_ENDPOINTS, type BatchEndpoint } from './llm-rows.js';

/** What `POST /v1/batches` (or `/v2/models/{m}/batches`) asks for. */
export interface BatchCreate {
  input_file_id?: unknown;
  endpoint?: unknown;
  completion_window?: unknown;
  metadata?: unknown;
}

/**
 * The server's jobs: created from an uploaded file, run one after another (`concurrentJobs` at once) by the same
 * runner as `nucleus batch run`, cancelled on request, and resumed from their checkpoints when the server starts
 * again. A job's results are split at its end into OpenAI's output file (answers) and error file (failed rows).
 */
export class BatchJobs {
  readonly #running = new Map<string, AbortController>();
  readonly #waiting: string[] = [];
  #stopped = false;
  readonly #tasks = new Set<Promise<void>>();

  constructor(
    readonly store: BatchStore,
    private readonly runner: BatchJobRunner,
    private readonly concurrentJobs: () => number,
    private readonly logger: Logger,
    /** Resolves once the server has started (its models loaded), or when `signal` aborts. */
    private readonly started: (signal: AbortSignal) => Promise<void> = async () => {},
  ) {}

  /** Picks up where the last server left off: unfinished jobs run again from their checkpoints. */
  async start(): Promise<void> {
    await this.store.init();
    for (const batch of (await this.store.batches()).reverse()) {
      if (batch.status === 'validating' || batch.status === 'in_progress' || batch.status === 'finalizing')
        this.#enqueue(batch.id);
      else if (batch.status === 'cancelling') await this.#finish(batch, 'cancelled');
    }
  }

  /** Stops every job where it is (each resumes at the next start) and waits for them to write their checkpoints. */
  async stop(): Promise<void> {
    this.#stopped = true;
    for (const c of this.#running.values()) c.abort();
    await Promise.allSettled(this.#tasks);
  }

  async create(owner: string, body: BatchCreate, model?: string): Promise<StoredBatch> {
    if (typeof body.input_file_id !== 'string')
      throw badRequest('invalid_request', 'input_file_id names a file uploaded with purpose "batch"', 'input_file_id');
    const endpoint = model === undefined ? body.endpoint : (body.endpoint ?? `/v2/models/${model}/infer`);
    if (model === undefined && !(BATCH_ENDPOINTS as readonly unknown[]).includes(endpoint))
      throw badRequest('invalid_request', `endpoint is one of ${BATCH_ENDPOINTS.join(', ')}`, 'endpoint');
    const window = body.completion_window ?? '24h';
    if (window !== '24h') throw badRequest('invalid_request', 'completion_window is "24h"', 'completion_window');
    const metadata = body.metadata ?? null;
    if (metadata !== null && (typeof metadata !== 'object' || Array.isArray(metadata)))
      throw badRequest('invalid_request', 'metadata is an object of strings', 'metadata');
    const file = await this.store.file(owner, body.input_file_id);
    if (file.purpose !== 'batch')
      throw badRequest(
        'invalid_request',
        `file ${file.id} has purpose "${file.purpose}", not "batch"`,
        'input_file_id',
      );
    const created = now();
    const batch: StoredBatch = {
      id: BatchStore.newId('batch'),
      object: 'batch',
      endpoint: endpoint as string,
      errors: null,
      input_file_id: file.id,
      completion_window: '24h',
      status: 'validating',
      output_file_id: null,
      error_file_id: null,
      created_at: created,
      in_progress_at: null,
      expires_at: created + 24 * 3600,
      finalizing_at: null,
      completed_at: null,
      failed_at: null,
      cancelling_at: null,
      cancelled_at: null,
      request_counts: { total: 0, completed: 0, failed: 0 },
      metadata: metadata as Record<string, string> | null,
      ...(model !== undefined && { model }),
      owner,
    };
    await this.store.saveBatch(batch);
    this.#enqueue(batch.id);
    return batch;
  }

  async cancel(owner: string, id: string): Promise<StoredBatch> {
    const batch = await this.store.batch(owner, id);
    if (['completed', 'failed', 'cancelled', 'cancelling'].includes(batch.status)) return batch;
    const running = this.#running.get(id);
    if (running) {
      batch.status = 'cancelling';
      batch.cancelling_at = now();
      await this.store.saveBatch(batch);
      running.abort();
      return batch;
    }
    const at = this.#waiting.indexOf(id);
    if (at >= 0) this.#waiting.splice(at, 1);
    return this.#finish({ ...batch, cancelling_at: now() }, 'cancelled');
  }

  #enqueue(id: string): void {
    this.#waiting.push(id);
    this.#pump();
  }

  #pump(): void {
    while (!this.#stopped && this.#waiting.length > 0 && this.#running.size < this.concurrentJobs()) {
      const id = this.#waiting.shift()!;
      const controller = new AbortController();
      this.#running.set(id, controller);
      const task = this.#run(id, controller.signal)
        .catch((err: unknown) => this.logger.error({ err, batch: id }, 'batch job failed'))
        .finally(() => {
          this.#running.delete(id);
          this.#tasks.delete(task);
          this.#pump();
        });
      this.#tasks.add(task);
    }
  }

  async #run(id: string, signal: AbortSignal): Promise<void> {
    // Jobs resumed at start-up are queued while the plugins activate, before the engines have loaded their models.
    await this.started(signal);
    const batch = (await this.store.batches()).find((b) => b.id === id);
    if (!batch) return;
    if (signal.aborted) {
      if (!this.#stopped) await this.#finish(batch, 'cancelled');
      return;
    }
    batch.status = 'in_progress';
    batch.in_progress_at ??= now();
    await this.store.saveBatch(batch);
    // The rows a previous server finished, counted from the checkpoint.
    const base = await countResults(this.store.resultsPath(id));
    batch.request_counts = { ...batch.request_counts, ...base };
    let saving = Promise.resolve();
    let lastSave = 0;
    try {
      const summary = await this.runner.run({
        model: batch.model ?? '',
        input: this.store.filePath(batch.input_file_id),
        output: this.store.resultsPath(id),
        format: 'jsonl',
        signal,
        ...(batch.model === undefined && { modelPerRow: true, endpoint: batch.endpoint as BatchEndpoint }),
        progress: {
          start: (total) =>
            void (batch.request_counts.total = total + batch.request_counts.completed + batch.request_counts.failed),
          advance: () => {},
          done: () => {},
        },
        onRows: (succeeded, failed) => {
          batch.request_counts.completed = base.completed + succeeded;
          batch.request_counts.failed = base.failed + failed;
          if (Date.now() - lastSave < 500) return;
          lastSave = Date.now();
          saving = saving.then(() => this.store.saveBatch(batch));
        },
      });
      await saving;
      if (this.#stopped && !summary.complete) return;
      await this.#finish(batch, summary.complete ? 'completed' : 'cancelled');
    } catch (err) {
      await saving;
      batch.failure = (err as Error).message;
      await this.#finish(batch, 'failed');
    }
  }

  // Splits the results into the output and error files and records the job's end.
  async #finish(batch: StoredBatch, status: 'completed' | 'cancelled' | 'failed'): Promise<StoredBatch> {
    batch.finalizing_at = now();
    const results = this.store.resultsPath(batch.id);
    const openai = batch.model === undefined;
    const outPath = `${results}.output`;
    const errPath = `${results}.errors`;
    const out = createWriteStream(outPath);
    const errors = createWriteStream(errPath);
    let completed = 0;
    let failed = 0;
    try {
      const lines = createInterface({ input: createReadStream(results), crlfDelay: Infinity });
      for await (const line of lines) {
        if (line === '') continue;
        const failedRow = isErrorLine(line);
        failedRow ? failed++ : completed++;
        const text = openai ? openAiLine(batch.id, line, failedRow) : line;
        const target = failedRow ? errors : out;
        if (!target.write(`${text}\n`)) await once(target, 'drain');
      }
    } catch {
      // No results yet (cancelled before it began).
    }
    out.end();
    errors.end();
    await Promise.all([once(out, 'close'), once(errors, 'close')]);
    batch.request_counts = { total: Math.max(batch.request_counts.total, completed + failed), completed, failed };
    if (completed > 0 || status === 'completed')
      batch.output_file_id = (await this.store.adoptFile(batch.owner, outPath, `${batch.id}_output.jsonl`)).id;
    if (failed > 0)
      batch.error_file_id = (await this.store.adoptFile(batch.owner, errPath, `${batch.id}_errors.jsonl`)).id;
    await rm(outPath, { force: true });
    await rm(errPath, { force: true });
    batch.status = status;
    if (status === 'completed') batch.completed_at = now();
    else if (status === 'cancelled') batch.cancelled_at = now();
    else batch.failed_at = now();
    await this.store.saveBatch(batch);
    return batch;
  }
}

/**
 * Answered and failed rows in a results file (none when there is no file yet). A last line without its newline (a
 * write the last server did not finish) is not a row: the resumed run cuts it and runs that row again.
 */
async function countResults(path: string): Promise<{ completed: number; failed: number }> {
  let completed = 0;
  let failed = 0;
  let partial = '';
  try {
    for await (const chunk of createReadStream(path, { encoding: 'utf8', highWaterMark: 1 << 20 })) {
      const lines = (partial + (chunk as string)).split('\n');
      partial = lines.pop()!;
      for (const line of lines) {
        if (line === '') continue;
        isErrorLine(line) ? failed++ : completed++;
      }
    }
  } catch {
    // Not started yet.
  }
  return { completed, failed };
}

// A result row as a line of OpenAI's output or error file.
function openAiLine(batchId: string, line: string, failed: boolean): string {
  const r = JSON.parse(line) as {
    row: number;
    custom_id?: string;
    response?: unknown;
    error?: { code: string; message: string; status?: number };
  };
  const id = `batch_req_${batchId.slice(6, 18)}_${r.row}`;
  const custom_id = r.custom_id ?? null;
  if (!failed)
    return JSON.stringify({
      id,
      custom_id,
      response: { status_code: 200, request_id: id, body: r.response },
      error: null,
    });
  const e = r.error!;
  return JSON.stringify({
    id,
    custom_id,
    response: { status_code: e.status ?? 500, request_id: id, body: { error: { code: e.code, message: e.message } } },
    error: null,
  });
}
