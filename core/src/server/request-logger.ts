import { performance } from 'node:perf_hooks';
import type { Logger } from '@nucleus/sdk';
import type { Context } from 'koa';
import type { Logger as PinoLogger } from 'pino';
import { LazyLogger } from './lazy-logger.js';

/** Log fields that may hold user data (prompts, inputs, outputs); censored, at the top level and one level down, unless `logging.logPayloads` is on. */
export const PAYLOAD_FIELDS = [
  'body',
  'prompt',
  'messages',
  'input',
  'inputs',
  'instances',
  'output',
  'outputs',
  'completion',
  'choices',
  'text',
  'embedding',
  'embeddings',
  'predictions',
] as const;

const TRACEPARENT = /^([\da-f]{2})-([\da-f]{32})-([\da-f]{16})-[\da-f]{2}$/;

/** The trace id of a W3C `traceparent` header, or undefined when the header is absent or malformed. */
export function traceIdOf(traceparent: string | undefined): string | undefined {
  const m = TRACEPARENT.exec(traceparent?.trim().toLowerCase() ?? '');
  if (!m || m[1] === 'ff' || /^0+$/.test(m[2]!) || /^0+$/.test(m[3]!)) return undefined;
  return m[2];
}

/**
 * Puts a request-scoped logger on `ctx.state.log` whose lines carry the request id and, when the client sent a
 * `traceparent`, the trace id; a tracing hook may replace it with one that also carries its span. Payload fields are
 * censored unless `logging.logPayloads` is on. Logs each request at debug level when it ends.
 */
export class RequestLogger {
  private readonly redacted: Logger;

  constructor(
    private readonly logger: Logger,
    private readonly logPayloads: () => boolean,
  ) {
    this.redacted = (logger as unknown as PinoLogger).child(
      {},
      { redact: { paths: PAYLOAD_FIELDS.flatMap((f) => [f, `*.${f}`]), censor: '[redacted]' } },
    ) as unknown as Logger;
  }

  /** Gives the request its logger; true when its debug line will be written (then `end` writes it). */
  begin(ctx: Context): boolean {
    const traceparent = ctx.req.headers.traceparent;
    const traceId = typeof traceparent === 'string' && traceparent ? traceIdOf(traceparent) : undefined;
    const log = new LazyLogger(this.logPayloads() ? this.logger : this.redacted, {
      requestId: ctx.state.requestId,
      ...(traceId ? { traceId } : {}),
    });
    ctx.state.log = log;
    if (traceId) ctx.state.traceId = traceId;
    // Nothing to time or to build when the line would not be written.
    return log.isLevelEnabled('debug');
  }

  /** The request's debug line, once it has been answered. */
  end(ctx: Context, started: number): void {
    const payloads = this.logPayloads();
    (ctx.state.log as Logger).debug(
      {
        method: ctx.method,
        path: ctx.path,
        route: ctx.state.route ?? 'unmatched',
        status: ctx.status,
        durationMs: Math.round((performance.now() - started) * 1000) / 1000,
        ...(payloads && (ctx.request as { body?: unknown }).body !== undefined
          ? { body: (ctx.request as { body?: unknown }).body }
          : {}),
      },
      'request completed',
    );
  }
}
