import type { Caller } from './caller.js';

/** What a protocol asks the request gates about one request: who sends it, from where, by which protocol, for what. */
export interface GateRequest {
  /** The caller as the key check found it; undefined while no key is configured. */
  readonly caller?: Caller;
  /** The client's address, as the socket has it. */
  readonly address: string;
  /** The protocol it came by: `http`, `ws`, `grpc` … */
  readonly protocol: string;
  /** What it asks for: an HTTP path, `/ws` for an upgrade, a WebSocket message type, a gRPC method. */
  readonly route: string;
  /** The request id its generations run under: their tokens (`generation.end`) are charged to its caller. */
  readonly requestId?: string;
  /** The request streams its answer: it holds one of its caller's concurrent streams until released. */
  readonly stream?: boolean;
}

/** A request the gates let through; released once its answer has ended. */
export interface GatePass {
  /** `ratelimit-limit`, `ratelimit-remaining`, `ratelimit-reset` (lower case) for the answer, when limited. */
  readonly headers: Readonly<Record<string, string>>;
  /**
   * Holds one of the caller's concurrent streams from now on, for a request known to stream only once its body is
   * read; throws a 429 `too_many_streams` NucleusError when the caller's streams are all taken.
   */
  holdStream(): void;
  /** The answer has ended: frees its stream; its generations still running are charged when they end. Idempotent. */
  release(): void;
}

/**
 * Lets a request through or refuses it, whatever protocol it came by: the rate-limit plugin contributes one at
 * `requestGate`. Protocols call every gate through {@link admitRequest} for each user request (not for probes or
 * admin routes), before reading its body where they can.
 */
export interface RequestGate {
  /**
   * Lets the request through, or throws a NucleusError: 429 `rate_limit_error` whose `headers` hold `retry-after`
   * and the `ratelimit-*` headers.
   */
  admit(request: GateRequest): GatePass | Promise<GatePass>;
}
