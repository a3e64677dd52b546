import type { ServerResponse } from 'node:http';
import { toNucleusError, type RouteContext } from '@nucleus/sdk';
import { ollamaErrorBody } from './ollama-errors.js';

/**
 * A newline-delimited JSON response (`application/x-ndjson`), as Ollama streams: one JSON object per line, written
 * straight to the socket. `signal` aborts when the client goes away, so the generation behind it is cancelled;
 * writes wait for the socket to drain, so a slow reader holds the generation back instead of filling memory.
 */
export class NdjsonStream {
  readonly #res: ServerResponse;
  readonly #abort = new AbortController();
  #closed = false;

  private constructor(ctx: RouteContext) {
    this.#res = ctx.res;
    ctx.status = 200;
    ctx.respond = false;
    this.#res.on('close', () => {
      if (!this.#res.writableFinished) this.#abort.abort();
      this.#closed = true;
    });
    this.#res.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-cache' });
    this.#res.flushHeaders();
  }

  /** Opens the stream: status 200 and the headers go out now. */
  static open(ctx: RouteContext): NdjsonStream {
    return new NdjsonStream(ctx);
  }

  /** Aborted when the client disconnects before the stream ends. */
  get signal(): AbortSignal {
    return this.#abort.signal;
  }

  /** Whether the socket is gone or the stream was ended. */
  get closed(): boolean {
    return this.#closed || this.#abort.signal.aborted;
  }

  /** Sends one line: a JSON value, or a string that is already its JSON text. */
  async send(line: unknown): Promise<void> {
    if (this.closed) return;
    if (!this.#res.write(`${typeof line === 'string' ? line : JSON.stringify(line)}\n`))
      await new Promise<void>((resolve) => {
        const done = () => {
          this.#res.off('drain', done);
          this.#res.off('close', done);
          resolve();
        };
        this.#res.on('drain', done);
        this.#res.on('close', done);
      });
  }

  /** Sends a failure after the status went out, as Ollama does: a last line `{"error": "..."}`. */
  async error(err: unknown): Promise<void> {
    await this.send(ollamaErrorBody(toNucleusError(err)));
  }

  /** Ends the response. */
  end(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#res.end();
  }
}
