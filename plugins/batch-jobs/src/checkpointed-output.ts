import { open, type FileHandle } from 'node:fs/promises';

/** How often the output is forced to disk while a job runs. */
const SYNC_EVERY_MS = 2000;
/** Output text gathered before it is written. */
const WRITE_BYTES = 1 << 20;

/**
 * The output of a batch job, which is also its checkpoint: one line per input row, written in input order, so the
 * number of complete lines is the number of rows done. Lines finished out of order wait in memory until the rows
 * before them are written (the window of rows in flight bounds them). A resume counts the complete lines and cuts a
 * partial last line, so no row is written twice and none is lost.
 */
export class CheckpointedOutput {
  readonly #pending = new Map<number, string[]>();
  #next: number;
  #buffer: string[] = [];
  #bufferBytes = 0;
  #lastSync = Date.now();
  #writing: Promise<void> = Promise.resolve();

  private constructor(
    private readonly handle: FileHandle,
    /** Rows in the file when it was opened. */
    readonly resumedFrom: number,
  ) {
    this.#next = resumedFrom;
  }

  /** Opens `path` to append after its complete lines (`resume`), or empty. */
  static async open(path: string, resume: boolean): Promise<CheckpointedOutput> {
    if (!resume) return new CheckpointedOutput(await open(path, 'w'), 0);
    const handle = await open(path, 'a+');
    const { lines, end } = await completeLines(handle);
    const { size } = await handle.stat();
    if (end < size) await handle.truncate(end);
    return new CheckpointedOutput(handle, lines);
  }

  /** Rows written (or queued to be) in order so far. */
  get rows(): number {
    return this.#next;
  }

  /** The lines of rows `first`, `first + 1` …, each without its newline. */
  put(first: number, lines: string[]): void {
    this.#pending.set(first, lines);
    for (let ready = this.#pending.get(this.#next); ready; ready = this.#pending.get(this.#next)) {
      this.#pending.delete(this.#next);
      this.#next += ready.length;
      for (const line of ready) {
        this.#buffer.push(line, '\n');
        this.#bufferBytes += line.length + 1;
      }
    }
    if (this.#bufferBytes >= WRITE_BYTES) this.#flush(Date.now() - this.#lastSync >= SYNC_EVERY_MS);
  }

  /** Waits for writes queued so far (the caller's back-pressure). */
  drained(): Promise<void> {
    return this.#writing;
  }

  /** Writes what is buffered and syncs it to disk. */
  async checkpoint(): Promise<void> {
    this.#flush(true);
    await this.#writing;
  }

  async close(): Promise<void> {
    await this.checkpoint();
    await this.handle.close();
  }

  #flush(sync: boolean): void {
    const text = this.#buffer.join('');
    this.#buffer = [];
    this.#bufferBytes = 0;
    const { handle } = this;
    this.#writing = this.#writing.then(async () => {
      if (text) await handle.write(text);
      if (sync) await handle.sync();
    });
    if (sync) this.#lastSync = Date.now();
  }
}

/** Complete lines in a file and the offset just after the last of them. */
export async function completeLines(handle: FileHandle): Promise<{ lines: number; end: number }> {
  const chunk = Buffer.allocUnsafe(1 << 20);
  let lines = 0;
  let end = 0;
  for (let offset = 0; ; ) {
    const { bytesRead } = await handle.read(chunk, 0, chunk.length, offset);
    if (bytesRead === 0) break;
    const view = chunk.subarray(0, bytesRead);
    for (let i = view.indexOf(0x0a); i >= 0; i = view.indexOf(0x0a, i + 1)) {
      lines++;
      end = offset + i + 1;
    }
    offset += bytesRead;
  }
  return { lines, end };
}
