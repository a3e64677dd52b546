import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { NucleusError } from '@nucleus/sdk';

/** A stored file, as `GET /v1/files/{id}` shows it (OpenAI's File object), and whose it is. */
export interface StoredFile {
  id: string;
  object: 'file';
  bytes: number;
  created_at: number;
  filename: string;
  purpose: string;
  /** The tenant of the key that made it ('' while the server has no keys); never shown. */
  owner: string;
}

/** A job as `GET /v1/batches/{id}` shows it (OpenAI's Batch object), with what the server keeps beside it. */
export interface StoredBatch {
  id: string;
  object: 'batch';
  endpoint: string;
  errors: null;
  input_file_id: string;
  completion_window: string;
  status: 'validating' | 'in_progress' | 'finalizing' | 'completed' | 'failed' | 'cancelling' | 'cancelled';
  output_file_id: string | null;
  error_file_id: string | null;
  created_at: number;
  in_progress_at: number | null;
  expires_at: number;
  finalizing_at: number | null;
  completed_at: number | null;
  failed_at: number | null;
  cancelling_at: number | null;
  cancelled_at: number | null;
  request_counts: { total: number; completed: number; failed: number };
  metadata: Record<string, string> | null;
  /** A KServe-style job: the tensor model every row runs on. */
  model?: string;
  /** Why the job failed. */
  failure?: string;
  owner: string;
}

const notFound = (what: string, id: string) => new NucleusError(404, 'not_found', `no ${what} ${id}`);

/** Files and jobs on disk under one folder (`files/`, `batches/`), so jobs outlive the server. */
export class BatchStore {
  constructor(readonly dir: string) {}

  async init(): Promise<void> {
    await mkdir(join(this.dir, 'files'), { recursive: true });
    await mkdir(join(this.dir, 'batches'), { recursive: true });
  }

  static newId(prefix: string): string {
    return `${prefix}-${randomBytes(12).toString('hex')}`;
  }

  filePath(id: string): string {
    return join(this.dir, 'files', `${id}.data`);
  }

  /** The results a job writes as it goes: its checkpoint. */
  resultsPath(id: string): string {
    return join(this.dir, 'batches', `${id}.results.jsonl`);
  }

  /**
   * Streams `body` into a new file, recorded once `purpose()` is known (a form may send it after the file): undefined
   * removes it again. More than `maxBytes` is refused with 413 and nothing is kept.
   */
  async addFile(
    owner: string,
    filename: string,
    purpose: () => Promise<string | undefined>,
    body: Readable,
    maxBytes: number,
  ): Promise<StoredFile | undefined> {
    const id = BatchStore.newId('file');
    const path = this.filePath(id);
    let bytes = 0;
    body.on('data', (chunk: Buffer) => {
      bytes += chunk.length;
      if (bytes > maxBytes)
        body.destroy(
          new NucleusError(
            413,
            'file_too_large',
            `the file is over ${maxBytes} bytes (plugin.batch-jobs.maxFileBytes)`,
          ),
        );
    });
    try {
      await pipeline(body, createWriteStream(path));
    } catch (err) {
      await rm(path, { force: true });
      throw err;
    }
    const given = await purpose();
    if (given === undefined) {
      await rm(path, { force: true });
      return undefined;
    }
    return this.#recordFile({ id, object: 'file', bytes, created_at: now(), filename, purpose: given, owner });
  }

  /** Adopts a file written elsewhere (a job's output) under a new id. */
  async adoptFile(owner: string, from: string, filename: string): Promise<StoredFile> {
    const id = BatchStore.newId('file');
    await rename(from, this.filePath(id));
    const { size } = await stat(this.filePath(id));
    return this.#recordFile({
      id,
      object: 'file',
      bytes: size,
      created_at: now(),
      filename,
      purpose: 'batch_output',
      owner,
    });
  }

  /** The file `id` of `owner`; another tenant's file is as unknown as a missing one. */
  async file(owner: string, id: string): Promise<StoredFile> {
    const meta = await readJson<StoredFile>(join(this.dir, 'files', `${safe(id)}.json`));
    if (!meta || meta.owner !== owner) throw notFound('file', id);
    return meta;
  }

  async batch(owner: string, id: string): Promise<StoredBatch> {
    const meta = await readJson<StoredBatch>(join(this.dir, 'batches', `${safe(id)}.json`));
    if (!meta || meta.owner !== owner) throw notFound('batch', id);
    return meta;
  }

  async saveBatch(batch: StoredBatch): Promise<void> {
    const path = join(this.dir, 'batches', `${batch.id}.json`);
    await writeFile(`${path}.tmp`, JSON.stringify(batch));
    await rename(`${path}.tmp`, path);
  }

  /** Every stored job, newest first. */
  async batches(): Promise<StoredBatch[]> {
    const names = (await readdir(join(this.dir, 'batches'))).filter((n) => /^batch-[0-9a-f]+\.json$/.test(n));
    const all = await Promise.all(names.map((n) => readJson<StoredBatch>(join(this.dir, 'batches', n))));
    return all.filter((b): b is StoredBatch => b !== undefined).sort((a, b) => b.created_at - a.created_at);
  }

  async #recordFile(meta: StoredFile): Promise<StoredFile> {
    await writeFile(join(this.dir, 'files', `${meta.id}.json`), JSON.stringify(meta));
    return meta;
  }
}

/** What the API shows of a stored record: everything but its owner. */
export function publicView<T extends { owner: string }>(record: T): Omit<T, 'owner'> {
  const { owner: _owner, ...rest } = record;
  return rest;
}

export function now(): number {
  return Math.floor(Date.now() / 1000);
}

// Ids come from URLs: only the shape the store makes reaches the file system.
function safe(id: string): string {
  return /^(file|batch)-[0-9a-f]{24}$/.test(id) ? id : 'invalid';
}

async function readJson<T>(path: string): Promise<T | undefined> {
  try {
    return JSON.parse(await readFile(path, 'utf8')) as T;
  } catch {
    return undefined;
  }
}
