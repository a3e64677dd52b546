import type { ServerResponse } from 'node:http';
import type { RouteContext } from './contributions.js';
import { toNucleusError } from './errors.js';
import { tokenClock, TokenDeliveryTimer } from './token-delivery.js';

/** Options of {@link SseStream.open}. */
export interface SseStreamOptions {
  /**
   * Receives, in groups, how long each token sent with {@link SseStream.sendToken} took from being sampled to being
   * written to the socket, in ms.
   */
  onTokenDelivery?: (delaysMs: number[]) => void;
}

// Where a stream that ended with an error event leaves its status on the request's state, for the routers that
// judge how requests went (a canary): the HTTP status of a stream is 200 whatever happens after its headers.
const STREAM_FAILURE = Symbol('nucleus.streamFailure');

/** The status of the error a stream on this request ended with (see {@link SseStream.error}); undefined if none. */
export function streamFailure(state: unknown): number | undefined {
  return (state as { [STREAM_FAILURE]?: number } | undefined)?.[STREAM_FAILURE];
}

// Where a route that streamed its answer leaves what it said in full, for a shadow copy's comparison.
const STREAMED_ANSWER = Symbol('nucleus.streamedAnswer');

/**
 * Records on the request's state what a streamed answer said in full, once it has ended, in the shape of a complete
 * answer of its API (OpenAI `choices[].text`, KServe `text_output`): a traffic policy's shadow compares it with the
 * copy's answer. A route that streams calls it after its last event; nothing is recorded for a stream that failed.
 */
export function recordStreamedAnswer(state: unknown, body: Record<string, unknown>): void {
  if (state && typeof state === 'object') (state as Record<PropertyKey, unknown>)[STREAMED_ANSWER] = body;
}

/** What {@link recordStreamedAnswer} recorded on this request's state; undefined if nothing was. */
export function streamedAnswer(state: unknown): Record<string, unknown> | undefined {
  return (state as { [STREAMED_ANSWER]?: Record<string, unknown> } | undefined)?.[STREAMED_ANSWER];
}

/**
 * A Server-Sent Events response written straight to the socket (Koa stays out of the way once it is open).
 * `signal` aborts when the client goes away, so the work behind the stream (a generation, a batch of requests) can be dropped; writes wait
 * for the socket to drain so a slow reader holds the producer back instead of filling memory.
 */
export class SseStream {
  readonly #res: ServerResponse;
  readonly #state: Record<PropertyKey, unknown>;
  readonly #abort = new AbortController();
  readonly #delivery: TokenDeliveryTimer | undefined;
  /** Sample times of the tokens written since the response was corked. */
  readonly #pending: number[] = [];
  #corked = false;
  #closed = false;

  private constructor(ctx: RouteContext, options: SseStreamOptions) {
    this.#res = ctx.res;
    this.#state = ctx.state as Record<PropertyKey, unknown>;
    if (options.onTokenDelivery) this.#delivery = new TokenDeliveryTimer(options.onTokenDelivery);
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
  static open(ctx: RouteContext, options: SseStreamOptions = {}): SseStream {
    return new SseStream(ctx, options);
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
    await this.#write(`${event ? `event: ${event}\n` : ''}data: ${payload}\n\n`);
  }

  /**
   * Sends a data-only event carrying a token sampled at `sampledAt` (on {@link tokenClock}): a JSON value, or a string
   * that is already its JSON text. Its delay to the socket goes to `onTokenDelivery`.
   */
  async sendToken(data: unknown, sampledAt: number | undefined): Promise<void> {
    if (this.closed) return;
    const frame = `data: ${typeof data === 'string' ? data : JSON.stringify(data)}\n\n`;
    if (this.#delivery && sampledAt !== undefined) this.#pending.push(sampledAt);
    await this.#write(frame);
  }

  // Frames written in one turn of the event loop (the tokens of one group the engine posted) leave in one write:
  // the response is corked at the first and uncorked once the turn's callbacks and promises have run.
  #write(frame: string): Promise<void> | undefined {
    if (!this.#corked) {
      this.#corked = true;
      this.#res.cork();
      process.nextTick(() => this.#uncork());
    }
    return this.#res.write(frame) ? undefined : this.#drained();
  }

  #uncork(): void {
    this.#corked = false;
    this.#res.uncork();
    if (this.#pending.length === 0) return;
    const now = tokenClock();
    for (const sampledAt of this.#pending) this.#delivery!.record(now - sampledAt);
    this.#pending.length = 0;
  }

  /**
   * Sends the error as an `error` event carrying `{"error":{message,type,code}}` (`event: null`: as a plain data
   * event, as protocols without named events send it), and records that the stream failed.
   */
  async error(err: unknown, event: string | null = 'error'): Promise<void> {
    const error = toNucleusError(err);
    this.#state[STREAM_FAILURE] = error.status;
    await this.send(error.toBody(), event ?? undefined);
  }

  /** Ends the response. */
  end(): void {
    if (this.#corked) this.#uncork();
    this.#delivery?.flush();
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
