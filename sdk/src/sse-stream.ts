import type { ServerResponse } from 'node:http';
import type { RouteContext } from './contributions.js';
import { toNucleusError } from './errors.js';

/**
 * A Server-Sent Events response written straight to the socket (Koa stays out of the way once it is open).
 * `signal` aborts when the client goes away, so the work behind the stream (a generation, a batch of requests) can be dropped; writes wait
 * for the socket to drain so a slow reader holds the producer back instead of filling memory.
 */
export class SseStream {
  readonly #res: ServerResponse;
  readonly #abort = new AbortController();
  #closed = false;

  private constructor(ctx: RouteContext) {
    this.#res = ctx.res;
    // Koa's own status is what the request log and the request events report.
    ctx.status = 200;
    ctx.respond = false;
    this.#res.on('close', () => {
      if (!this.#res.writableFinished) this.#abort.abort();
      this.#closed = true;
    });
    this.#res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    });
    this.#res.flushHeaders();
  }

  /** Opens the stream: status 200 and the SSE headers go out now. */
  static open(ctx: RouteContext): SseStream {
    return new SseStream(ctx);
  }

  /** Aborted when the client disconnects before the stream ends. */
  get signal(): AbortSignal {
    return this.#abort.signal;
  }

  /** Whether the socket is gone or the stream was ended. */
  get closed(): boolean {
    return this.#closed || this.#abort.signal.aborted;
  }

  /** Sends one event: a JSON value (or a raw string such as `[DONE]`) as its data, with an optional event name. */
  async send(data: unknown, event?: string): Promise<void> {
    if (this.closed) return;
    const payload = typeof data === 'string' ? data : JSON.stringify(data);
    const frame = `${event ? `event: ${event}\n` : ''}data: ${payload}\n\n`;
    if (!this.#res.write(frame)) await this.#drained();
  }

  /** Sends the error as an `error` event carrying `{"error":{message,type,code}}`. */
  async error(err: unknown): Promise<void> {
    await this.send(toNucleusError(err).toBody(), 'error');
  }

  /** Ends the response. */
  end(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#res.end();
  }

  #drained(): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        this.#res.off('drain', done);
        this.#res.off('close', done);
        resolve();
      };
      this.#res.on('drain', done);
      this.#res.on('close', done);
    });
  }
}
