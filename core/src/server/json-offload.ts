import type { IncomingMessage } from 'node:http';
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { jsonTooDeep } from './json-depth.js';
import type { ParseJob, ParseResult } from './json-parse-thread.js';
import { type ReadBudget, threadReadBudget } from './read-budget.js';

const THREAD = new URL('./json-parse-thread.js', import.meta.url);

/** Raised for a body that is not valid JSON; the message is the parser's. */
export class JsonSyntaxError extends Error {}

interface Pending {
  resolve: (value: unknown) => void;
  reject: (err: Error) => void;
  worker: Worker;
  maxDepth: number;
}

/**
 * A small pool of worker threads (1 or 2) that parse large JSON bodies off the event loop. The lists of numbers
 * that are KServe v2 `inputs[i].data` come back as typed arrays whose buffers are transferred, so handing the
 * result back costs little more than the envelope. Threads start on first use and do not keep the process alive.
 */
export class JsonParserPool {
  readonly size: number;
  private readonly workers: Worker[] = [];
  private readonly load = new Map<Worker, number>();
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private closed = false;

  /**
   * `niceness` (0–19, `workers.niceness`) is the OS priority the threads parse at: a 3 MB tensor body keeps a thread
   * busy for tens of ms, and two of them at the server's priority take the cores from the event loop (under a ResNet
   * JSON load on 2 cores, /health p99 fell by half with the threads lowered, at no loss of throughput).
   */
  constructor(
    size = Math.min(2, availableParallelism()),
    private readonly niceness = 0,
  ) {
    this.size = Math.max(1, Math.min(2, size));
  }

  /**
   * Parses `bytes` (transferred: the caller must not use them again); `tensors` types v2 tensor data. A body nested
   * deeper than `maxDepth` fails with the 400 `json_too_deep`, invalid JSON with a {@link JsonSyntaxError}.
   */
  parse(bytes: Uint8Array, tensors: boolean, maxDepth: number): Promise<unknown> {
    if (this.closed) return Promise.reject(new Error('the JSON parser pool is closed'));
    const worker = this.pick();
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject, worker, maxDepth });
      this.load.set(worker, (this.load.get(worker) ?? 0) + 1);
      const job: ParseJob = { id, bytes, tensors, maxDepth };
      const owns =
        bytes.byteOffset === 0 &&
        bytes.byteLength === bytes.buffer.byteLength &&
        !(bytes.buffer instanceof SharedArrayBuffer);
      worker.postMessage(job, owns ? [bytes.buffer as ArrayBuffer] : []);
    });
  }

  /** Stops the threads; parses in flight fail. */
  async close(): Promise<void> {
    this.closed = true;
    const workers = this.workers.splice(0);
    await Promise.all(workers.map((w) => w.terminate()));
  }

  private pick(): Worker {
    if (this.workers.length < this.size && this.workers.every((w) => (this.load.get(w) ?? 0) > 0)) return this.spawn();
    let best = this.workers[0]!;
    for (const w of this.workers) if ((this.load.get(w) ?? 0) < (this.load.get(best) ?? 0)) best = w;
    return best;
  }

  private spawn(): Worker {
    const worker = new Worker(THREAD, { workerData: { niceness: this.niceness } });
    worker.unref();
    this.workers.push(worker);
    this.load.set(worker, 0);
    worker.on('message', (result: ParseResult) => {
      const job = this.pending.get(result.id);
      if (!job) return;
      this.pending.delete(result.id);
      this.load.set(worker, Math.max(0, (this.load.get(worker) ?? 1) - 1));
      if (result.ok) job.resolve(result.value);
      else if (result.tooDeep) job.reject(jsonTooDeep(job.maxDepth));
      else job.reject(new JsonSyntaxError(result.message));
    });
    const fail = (err: Error): void => {
      const i = this.workers.indexOf(worker);
      if (i >= 0) this.workers.splice(i, 1);
      this.load.delete(worker);
      for (const [id, job] of this.pending) {
        if (job.worker !== worker) continue;
        this.pending.delete(id);
        job.reject(err);
      }
    };
    worker.on('error', fail);
    worker.on('exit', (code) => fail(new Error(`the JSON parser thread exited (code ${code})`)));
    return worker;
  }
}

/** Raised when a body grows past the limit while it is read. */
export class BodyTooLargeError extends Error {}

/**
 * Reads a request body into one buffer it owns. With its Content-Length (`length`) the buffer is allocated once and
 * filled as chunks arrive; without one (chunked transfer) the chunks are kept and joined once at the end. With
 * `alignAt`, the body is placed in its buffer so that byte `alignAt` of it sits on an 8-byte boundary: tensor bytes
 * starting there can be viewed as any typed array without a copy. The bytes taken count against `budget` (this
 * thread's by default): once a turn of the event loop has read its share, the body waits for the next turn.
 */
export function readBody(
  req: IncomingMessage,
  length: number | undefined,
  limit: number,
  alignAt = 0,
  budget: ReadBudget = threadReadBudget,
): Promise<Uint8Array> {
  // Not zeroed: every byte is written before the body is used (a body shorter than its length is refused).
  const allocate = (n: number): Uint8Array => {
    const pad = (8 - (alignAt % 8)) % 8;
    return new Uint8Array(Buffer.allocUnsafeSlow(n + pad).buffer, pad, n);
  };
  return new Promise((resolve, reject) => {
    const known = length !== undefined && Number.isSafeInteger(length) && length >= 0;
    if (known && length > limit) {
      reject(new BodyTooLargeError());
      return;
    }
    const out = known ? allocate(length) : undefined;
    const chunks: Buffer[] = [];
    let filled = 0;
    const cleanup = (): void => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
      req.off('close', onClose);
    };
    const fail = (err: Error): void => {
      cleanup();
      req.resume();
      reject(err);
    };
    const onData = (chunk: Buffer): void => {
      if (out) {
        if (filled + chunk.length > out.length) {
          fail(
            Object.assign(new Error('request body is longer than its Content-Length'), { status: 400, expose: true }),
          );
          return;
        }
        out.set(chunk, filled);
      } else {
        if (filled + chunk.length > limit) {
          fail(new BodyTooLargeError());
          return;
        }
        chunks.push(chunk);
      }
      filled += chunk.length;
      if (!budget.take(chunk.length)) {
        req.pause();
        budget.wait(() => req.resume());
      }
    };
    const onEnd = (): void => {
      cleanup();
      if (!out) {
        const joined = allocate(filled);
        let at = 0;
        for (const chunk of chunks) {
          joined.set(chunk, at);
          at += chunk.length;
        }
        resolve(joined);
        return;
      }
      if (filled !== out.length)
        reject(
          Object.assign(new Error('request body is shorter than its Content-Length'), { status: 400, expose: true }),
        );
      else resolve(out);
    };
    const onError = (err: Error): void => {
      cleanup();
      reject(err);
    };
    const onClose = (): void => {
      if (out && filled === out.length) return;
      cleanup();
      reject(
        Object.assign(new Error('the client closed the connection before sending the body'), {
          status: 400,
          expose: true,
        }),
      );
    };
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
    req.on('close', onClose);
  });
}
