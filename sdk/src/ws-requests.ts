import type { Tenancy } from './tenancy.js';

/** One request a client sent on `/ws` (`{"type","id",…}`), as a {@link WsRequestHandler} runs it. */
export interface WsRequest {
  /** The client's id for it (a string or a number), echoed on every message about it. */
  readonly id: string | number;
  /** The message type (`generate`, `chat`, `infer` …). */
  readonly type: string;
  /** The message as the client sent it: the same fields as the HTTP route's body, beside `type` and `id`. */
  readonly body: Record<string, unknown>;
  /** The socket's key, as HTTP requests carry it into engine requests. */
  readonly tenancy: Tenancy;
  /** The socket's key name (or role), for logs. */
  readonly key: string;
  /**
   * The server's id for the request, unique across sockets: its `request.start` / `request.end` events carry it, and
   * engine requests run under it so the request gates charge its LLM tokens to the socket's key.
   */
  readonly requestId: string;
  /** The headers of the socket's upgrade request: what routers (sticky A/B by `x-user-id`) and hooks read. */
  readonly headers: Record<string, string | string[] | undefined>;
  /**
   * The request's exchange as `InferenceHooks.run` takes it (an `InferenceExchange`, spelled out here so that this
   * file imports nothing): its path is `ws:<type>`, so hooks tell its body from an HTTP route's; a WebSocket answer
   * has no headers, so what hooks set is not sent.
   */
  readonly exchange: { readonly path: string; set(field: string, value: string): void; readonly state?: unknown };
  /** Aborts when the client cancels the request, closes the socket, or reads too slowly to keep up with it. */
  readonly signal: AbortSignal;
  /**
   * Sends a message about this request (its `id` is added). False once the request is over (cancelled, or cut off
   * because the client read too slowly): the handler stops there.
   */
  send(message: Record<string, unknown>): boolean;
}

/**
 * A kind of request clients send on `/ws`, contributed at the `wsHandlers` extension point. The server tracks each
 * request by its id (several at once per socket), admits it through the request gates (rate limits) as HTTP requests
 * are, reports it with `request.start` / `request.end`, answers `cancel`, bounds what a slow reader makes it buffer,
 * and turns what `handle` throws into `{"type":"error","id","error":{type,code,message}}`.
 */
export interface WsRequestHandler {
  /** The message types it takes; the hub's own (`subscribe`, `cancel` …) cannot be taken. */
  readonly types: readonly string[];
  /** The types whose answer streams: each request of one holds one of its caller's concurrent streams while it runs. */
  readonly streams?: readonly string[];
  /** Runs one request to its end: resolves once its last message is sent. */
  handle(request: WsRequest): Promise<void>;
}
