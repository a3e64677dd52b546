import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import {
  Metadata,
  type sendUnaryData,
  type ServerDuplexStream,
  type ServerUnaryCall,
  type handleBidiStreamingCall,
  type handleUnaryCall,
} from '@grpc/grpc-js';
import {
  admitRequest,
  NucleusError,
  toNucleusError,
  unavailable,
  type AuthenticatedCaller,
  type EventBus,
  type ExtensionPointView,
  type GatePass,
  type Logger,
  type Readiness,
  type RequestAuthenticator,
  type RequestGate,
  type RequestHeaders,
} from '@nucleus/sdk';
import { httpStatusOf, toStatus } from './grpc-errors.js';

/** What every call has, unary or streaming. */
type ServerSurfaceCall = ServerUnaryCall<unknown, unknown> | ServerDuplexStream<unknown, unknown>;

/** The service's full name, as every RPC path starts with it. */
export const SERVICE = 'inference.GRPCInferenceService';

/** Who may call an RPC, as HTTP routes say it: `public` ones (health) need no key and are answered while starting. */
export type RpcAccess = 'public' | 'user' | 'admin';

/** One RPC in progress, as its handler sees it. */
export interface RpcCall {
  readonly rpc: string;
  readonly requestId: string;
  readonly caller: AuthenticatedCaller;
  /** Aborted when the client cancels, when its deadline (`grpc-timeout`) passes, or when the server shuts down. */
  readonly signal: AbortSignal;
  /** The call's metadata as request headers (text keys only), for routers and hooks. */
  readonly headers: RequestHeaders;
  /** Milliseconds left before the call's deadline, or undefined when it has none. */
  timeLeftMs(): number | undefined;
  /** Adds a key to the metadata the call ends with (a hook's or a router's response header). */
  setTrailer(name: string, value: string): void;
}

/** The failure a call whose deadline passed ends with; its work was cancelled. */
function deadlineExceeded(rpc: string): NucleusError {
  return new NucleusError(
    504,
    'deadline_exceeded',
    `${rpc}: the call's deadline (grpc-timeout) passed; its work was cancelled`,
  );
}

const REQUEST_ID = /^[\w.:-]{1,128}$/;
const BEARER = 'authorization';

/** A metadata value as text, or undefined (binary keys and absent ones). */
function text(metadata: Metadata, key: string): string | undefined {
  const value = metadata.get(key)[0];
  return typeof value === 'string' ? value : undefined;
}

/** Where the gate reads what it needs from the kernel. */
export interface RpcGateOptions {
  events: EventBus;
  logger: Logger;
  auth: RequestAuthenticator | undefined;
  readiness: Readiness | undefined;
  /** Aborted when the plugin deactivates: calls still running are cancelled. */
  shutdown: AbortSignal;
  /** The request gates (rate limits) every user call passes, as HTTP requests and WebSocket messages do. */
  gates?: ExtensionPointView<RequestGate>;
}

/** The client's address from a call's peer (`host:port`, an IPv6 host unbracketed), as HTTP's socket gives it. */
export function peerAddress(peer: string): string {
  const at = peer.lastIndexOf(':');
  return at > 0 && /^\d+$/.test(peer.slice(at + 1)) ? peer.slice(0, at).replace(/^\[(.*)\]$/, '$1') : peer;
}

/**
 * The one way into every RPC: request id, the key check (the same keys and roles as HTTP), admission (refused while
 * the server starts or drains), the request gates for user calls (rate limits: a refusal is RESOURCE_EXHAUSTED with
 * `retry-after`; a streaming call holds one of the caller's concurrent streams until it ends; generations run under
 * the call's request id, so their tokens are charged), the call's cancellation and deadline as one AbortSignal, then
 * the handler; its
 * result or its error (a NucleusError mapped to a gRPC status) goes back, and `request.start` / `request.end` (with
 * the caller's `traceparent`) report it as HTTP requests are reported, so metrics and traces count both protocols.
 */
export class RpcGate {
  private inFlight = 0;
  private idle?: () => void;

  constructor(private readonly options: RpcGateOptions) {}

  /** Waits until no call is in flight, or `ms` at most. */
  async drain(ms: number): Promise<void> {
    if (this.inFlight === 0) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.idle = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }

  /** A unary handler running `handle` behind the gate. */
  unary<Req, Res>(
    rpc: string,
    access: RpcAccess,
    handle: (request: Req, call: RpcCall) => Promise<Res> | Res,
  ): handleUnaryCall<Req, Res> {
    return (surface: ServerUnaryCall<Req, Res>, callback: sendUnaryData<Res>) => {
      const trailer = new Metadata();
      const run = (call: RpcCall) => handle(surface.request, call);
      void this.enter(rpc, access, false, surface as ServerSurfaceCall, trailer, run).then((result) => {
        if (result.ok) callback(null, result.value, trailer);
        else if (result.status) callback({ ...result.status, name: 'Error', message: result.status.details }, null);
      });
    };
  }

  /** A bidirectional-stream handler: `handle` reads and writes the stream; the gate ends it with its status. */
  bidi<Req, Res>(
    rpc: string,
    access: RpcAccess,
    handle: (stream: ServerDuplexStream<Req, Res>, call: RpcCall) => Promise<void>,
  ): handleBidiStreamingCall<Req, Res> {
    return (stream: ServerDuplexStream<Req, Res>) => {
      const trailer = new Metadata();
      void this.enter(rpc, access, true, stream as ServerSurfaceCall, trailer, (call) => handle(stream, call)).then(
        (result) => {
          if (result.ok) stream.end(trailer);
          else if (result.status)
            stream.emit('error', { ...result.status, name: 'Error', message: result.status.details });
        },
      );
    };
  }

  // Never rejects: the outcome says how the call ends (no status when the client is gone and nobody would hear it).
  private async enter<T>(
    rpc: string,
    access: RpcAccess,
    streaming: boolean,
    surface: ServerSurfaceCall,
    trailer: Metadata,
    run: (call: RpcCall) => Promise<T> | T,
  ): Promise<{ ok: true; value: T } | { ok: false; status?: ReturnType<typeof toStatus> }> {
    const { events } = this.options;
    const started = performance.now();
    this.inFlight++;
    const sentId = text(surface.metadata, 'x-request-id') ?? '';
    const requestId = REQUEST_ID.test(sentId) ? sentId : randomUUID();
    const path = `/${SERVICE}/${rpc}`;
    const traceparent = text(surface.metadata, 'traceparent');
    const controller = new AbortController();
    const onCancel = () =>
      controller.abort(new NucleusError(499, 'client_closed_request', `${rpc}: the client cancelled the call`));
    surface.once('cancelled', onCancel);
    const onShutdown = () =>
      controller.abort(unavailable('server_shutting_down', 'the gRPC server is shutting down', 1));
    this.options.shutdown.addEventListener('abort', onShutdown, { once: true });
    const deadline = surface.getDeadline();
    const deadlineAt = deadline instanceof Date ? deadline.getTime() : deadline;
    const timer = Number.isFinite(deadlineAt)
      ? setTimeout(() => controller.abort(deadlineExceeded(rpc)), Math.max(0, deadlineAt - Date.now()))
      : undefined;
    let caller: AuthenticatedCaller = { tenancy: {} };
    let status = 200;
    let errorCode: string | undefined;
    let tenantKnown = false;
    let pass: GatePass | undefined;
    trailer.set('x-request-id', requestId);
    try {
      if (access !== 'public') {
        try {
          caller = await this.authenticate(text(surface.metadata, BEARER), access);
        } catch (err) {
          const refused = toNucleusError(err);
          if (refused.status === 401 || refused.status === 403)
            events.emit('auth.refused', {
              requestId,
              ...(caller.label !== undefined && { key: caller.label }),
              address: surface.getPeer(),
              method: 'POST',
              path,
              status: refused.status,
              errorCode: refused.code,
            });
          throw refused;
        }
      }
      const tenant = caller.tenancy.tenant;
      tenantKnown = true;
      events.emit('request.start', {
        requestId,
        method: 'POST',
        path,
        ...(tenant !== undefined && { tenant }),
        ...(traceparent !== undefined && { traceparent }),
      });
      if (access !== 'public') this.admit();
      // After the key check and before any work, as `preParsing` hooks judge HTTP requests; admin calls are not
      // limited, as admin routes are not.
      if (access === 'user' && this.options.gates) {
        pass = await admitRequest(this.options.gates, {
          ...(caller.caller && { caller: caller.caller }),
          address: peerAddress(surface.getPeer()),
          protocol: 'grpc',
          route: rpc,
          requestId,
          stream: streaming,
        });
        for (const [name, value] of Object.entries(pass.headers)) trailer.set(name, value);
      }
      if (controller.signal.aborted) throw controller.signal.reason;
      const call: RpcCall = {
        rpc,
        requestId,
        caller,
        signal: controller.signal,
        headers: headersOf(surface.metadata),
        timeLeftMs: () => (Number.isFinite(deadlineAt) ? Math.max(0, deadlineAt - Date.now()) : undefined),
        setTrailer: (name, value) => trailer.set(name.toLowerCase(), value),
      };
      const value = await run(call);
      // A handler that finished after its deadline still answers DEADLINE_EXCEEDED, as the client already heard.
      if (controller.signal.aborted) throw controller.signal.reason;
      return { ok: true, value };
    } catch (err) {
      const reason = controller.signal.aborted ? controller.signal.reason : err;
      status = httpStatusOf(reason);
      errorCode = toNucleusError(reason).code;
      if (status >= 500 && status !== 503 && status !== 504)
        this.options.logger.error({ err: reason, requestId, rpc }, 'gRPC call failed');
      // A cancelled call has nobody to answer; grpc-js already ended a call whose deadline passed, but the status is
      // harmless there.
      if (surface.cancelled && status === 499) return { ok: false };
      return { ok: false, status: toStatus(reason, requestId) };
    } finally {
      pass?.release();
      if (--this.inFlight === 0) this.idle?.();
      clearTimeout(timer);
      surface.removeListener('cancelled', onCancel);
      this.options.shutdown.removeEventListener('abort', onShutdown);
      const durationMs = performance.now() - started;
      const tenant = caller.tenancy.tenant;
      if (!tenantKnown)
        events.emit('request.start', {
          requestId,
          method: 'POST',
          path,
          ...(traceparent !== undefined && { traceparent }),
        });
      events.emit('request.end', {
        requestId,
        ...(tenant !== undefined && { tenant }),
        method: 'POST',
        path,
        route: path,
        status,
        durationMs,
        ...(errorCode !== undefined && status >= 400 && { errorCode }),
      });
      if (access === 'admin' && status !== 401 && status !== 403)
        events.emit('admin.action', {
          requestId,
          ...(caller.label !== undefined && { key: caller.label }),
          address: surface.getPeer(),
          action: `grpc.${rpc}`,
          method: 'POST',
          route: path,
          status,
          outcome: status < 400 ? 'ok' : 'failed',
          ...(errorCode !== undefined && status >= 400 && { errorCode }),
          durationMs,
        });
    }
  }

  // Without the HTTP server's key check (a kernel run without it) nothing can prove who calls: refuse rather than open.
  private authenticate(authorization: string | undefined, access: 'user' | 'admin'): Promise<AuthenticatedCaller> {
    if (!this.options.auth)
      throw unavailable(
        'auth_unavailable',
        `the server has no key check for ${access} calls; gRPC needs the HTTP server running`,
      );
    return this.options.auth.authenticate(authorization, access);
  }

  // Calls other than health are refused while the server starts (models loading) or drains, as HTTP refuses them.
  private admit(): void {
    const phase = this.options.readiness?.report().status;
    if (phase === 'stopping')
      throw unavailable('server_shutting_down', 'the server is shutting down; retry against another instance', 1);
    if (phase === 'starting')
      throw unavailable('server_starting', 'the server is starting: its models are loading; retry shortly', 1);
  }
}

/** Text metadata as request headers (binary `-bin` keys left out). */
function headersOf(metadata: Metadata): RequestHeaders {
  const headers: RequestHeaders = {};
  for (const [key, value] of Object.entries(metadata.getMap())) if (typeof value === 'string') headers[key] = value;
  return headers;
}
