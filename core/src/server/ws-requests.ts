import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import {
  admitRequest,
  NucleusError,
  toNucleusError,
  type Caller,
  type EventBus,
  type ExtensionPointView,
  type GatePass,
  type Logger,
  type RequestGate,
  type RequestHeaders,
  type Tenancy,
  type WsRequest,
  type WsRequestHandler,
} from '@nucleus/sdk';
import type { WebSocket } from 'ws';

/** One socket's view of its owner, as the upgrade's key check found it. */
export interface WsRequestOwner {
  /** The key's name (or role), for logs. */
  label: string;
  tenancy: Tenancy;
  /** The caller the request gates judge; absent while no key is configured. */
  caller?: Caller;
  /** The client's address, as the upgrade's socket had it: the gates' per-address limits count it. */
  address: string;
  /** The upgrade request's headers, which routers and hooks see as each request's headers. */
  headers: RequestHeaders;
}

/** What a socket's requests go through besides their handler: the request gates, and the bus that reports them. */
export interface WsRequestContext {
  events: EventBus;
  logger: Logger;
  handlers: ExtensionPointView<WsRequestHandler> | undefined;
  gates: ExtensionPointView<RequestGate> | undefined;
  maxBufferedBytes: () => number;
}

/** An error message about one request (or about a message that named none, with `id` absent). */
export function wsError(id: string | number | undefined, err: unknown): Record<string, unknown> {
  const e = toNucleusError(err);
  const retry = e.headers['retry-after'];
  return {
    type: 'error',
    ...(id !== undefined && { id }),
    error: e.toBody().error,
    ...(retry !== undefined && { retry_after: Number(retry) }),
  };
}

interface Running {
  controller: AbortController;
  /** Set once the request is over for the client: nothing more is sent about it. */
  over: boolean;
}

/**
 * The requests in flight on one socket, by the client's id: several at once, each with its own `AbortSignal`, each
 * answered by the handler its type names (the `wsHandlers` extension point). `cancel` aborts one and is acknowledged
 * with `{"type":"cancelled","id"}`; a request whose messages pile up past `maxBufferedBytes` unsent (a client that
 * reads too slowly) is cut off with an error about it alone, the socket and its other requests go on.
 */
export class WsRequests {
  readonly #running = new Map<string, Running>();

  constructor(
    private readonly socket: WebSocket,
    private readonly owner: WsRequestOwner,
    private readonly context: WsRequestContext,
  ) {}

  /** The handler for a message type, if a plugin serves it. */
  handlerOf(type: string): WsRequestHandler | undefined {
    return this.context.handlers?.list().find((c) => c.value.types.includes(type))?.value;
  }

  /** Every type a plugin serves now, for error messages. */
  types(): string[] {
    return [...new Set(this.context.handlers?.list().flatMap((c) => c.value.types) ?? [])];
  }

  /**
   * The one entry every WS request goes through, as an HTTP request goes through the server's middleware: id check →
   * `request.start` (under a request id of the server's, with the socket's tenant) → the request gates (rate limits:
   * a refusal is an error message with `retry_after`; a streamed type holds one of the caller's concurrent streams
   * until it ends) → the handler, which runs the hooks and routers and admits the request to the engine as its HTTP
   * route does → `request.end` with the status it ended with (499 once cancelled), so metrics, audit and stats count
   * WebSocket requests as they count HTTP ones.
   */
  start(type: string, message: Record<string, unknown>, handler: WsRequestHandler): void {
    const id = message.id;
    if ((typeof id !== 'string' || id.length === 0 || id.length > 256) && !Number.isFinite(id))
      return this.#send(
        wsError(
          undefined,
          new NucleusError(
            400,
            'invalid_id',
            `a "${type}" message needs an "id": a string of 1 to 256 characters or a number`,
            {
              param: 'id',
            },
          ),
        ),
      );
    const key = String(id);
    if (this.#running.has(key))
      return this.#send(
        wsError(
          id as string | number,
          new NucleusError(
            409,
            'duplicate_id',
            `request ${JSON.stringify(id)} is still running on this socket; use a new id`,
            {
              param: 'id',
            },
          ),
        ),
      );
    const running: Running = { controller: new AbortController(), over: false };
    this.#running.set(key, running);
    const { type: _type, id: _id, ...body } = message;
    const request: WsRequest = {
      id: id as string | number,
      type,
      body,
      tenancy: this.owner.tenancy,
      key: this.owner.label,
      requestId: randomUUID(),
      headers: this.owner.headers,
      exchange: { path: `ws:${type}`, set: () => {}, state: {} },
      signal: running.controller.signal,
      send: (m) => this.#sendFor(key, running, { ...m, id }),
    };
    void this.#run(request, handler, key, running);
  }

  // Never rejects: how the request ended goes to the client (unless it is over for it) and into `request.end`.
  async #run(request: WsRequest, handler: WsRequestHandler, key: string, running: Running): Promise<void> {
    const { events, gates } = this.context;
    const { requestId, exchange } = request;
    const tenant = this.owner.tenancy.tenant;
    const started = performance.now();
    events.emit('request.start', { requestId, method: 'WS', path: '/ws', ...(tenant !== undefined && { tenant }) });
    let pass: GatePass | undefined;
    let status = 200;
    let errorCode: string | undefined;
    try {
      if (gates)
        pass = await admitRequest(gates, {
          ...(this.owner.caller && { caller: this.owner.caller }),
          address: this.owner.address,
          protocol: 'ws',
          route: exchange.path,
          requestId,
          stream: handler.streams?.includes(request.type) === true,
        });
      if (request.signal.aborted) throw request.signal.reason;
      await handler.handle(request);
      // A handler stops quietly once its request is cancelled or cut off: it ended as the abort says.
      if (request.signal.aborted) throw request.signal.reason;
    } catch (err) {
      const failure = toNucleusError(request.signal.aborted ? request.signal.reason : err);
      status = failure.status;
      errorCode = failure.code;
      if (status >= 500 && status !== 503) this.context.logger.error({ err, requestId }, 'websocket request failed');
      if (!running.over) this.#send(wsError(request.id, err));
    } finally {
      pass?.release();
      running.over = true;
      if (this.#running.get(key) === running) this.#running.delete(key);
      events.emit('request.end', {
        requestId,
        ...(tenant !== undefined && { tenant }),
        method: 'WS',
        path: '/ws',
        route: exchange.path,
        status,
        durationMs: performance.now() - started,
        ...(status >= 400 && errorCode !== undefined && { errorCode }),
      });
    }
  }

  /** `{"type":"cancel","id"}`: aborts that request and acknowledges it; an unknown id gets an error about it. */
  cancel(id: unknown): void {
    const running = typeof id === 'string' || typeof id === 'number' ? this.#running.get(String(id)) : undefined;
    if (!running || running.over) {
      return this.#send(
        wsError(
          typeof id === 'string' || typeof id === 'number' ? id : undefined,
          new NucleusError(
            404,
            'unknown_request',
            `no request with id ${JSON.stringify(id)} is running on this socket`,
            {
              param: 'id',
            },
          ),
        ),
      );
    }
    running.over = true;
    this.#running.delete(String(id));
    running.controller.abort(new NucleusError(499, 'cancelled', 'the client cancelled the request'));
    this.#send({ type: 'cancelled', id });
  }

  /** The socket closed: every request of it stops. */
  closeAll(): void {
    for (const running of this.#running.values()) {
      running.over = true;
      running.controller.abort(new NucleusError(499, 'client_closed', 'the socket closed'));
    }
    this.#running.clear();
  }

  /** Requests in flight. */
  get size(): number {
    return this.#running.size;
  }

  #sendFor(key: string, running: Running, message: Record<string, unknown>): boolean {
    if (running.over || this.socket.readyState !== this.socket.OPEN) return false;
    const bound = this.context.maxBufferedBytes();
    if (this.socket.bufferedAmount >= bound) {
      running.over = true;
      this.#running.delete(key);
      const err = new NucleusError(
        429,
        'slow_reader',
        `request cancelled: ${this.socket.bufferedAmount} bytes were waiting to be sent to this socket, past its bound (ws.maxBufferedBytes = ${bound}); read messages faster, or run fewer requests at once`,
      );
      running.controller.abort(err);
      this.context.logger.warn(
        { key: this.owner.label, id: message.id },
        'websocket request cancelled: the client reads too slowly',
      );
      // One short message past the bound, so the client learns why its request stopped.
      this.#send(wsError(message.id as string | number, err));
      return false;
    }
    this.#send(message);
    return true;
  }

  #send(message: Record<string, unknown>): void {
    if (this.socket.readyState === this.socket.OPEN) this.socket.send(JSON.stringify(message));
  }
}
