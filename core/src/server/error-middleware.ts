import type { ErrorBodyFormat, ExtensionPointView, Logger } from '@nucleus/sdk';
import { NucleusError, toNucleusError } from '@nucleus/sdk';
import type { Context } from 'koa';

/** Refusals every start and every shutdown produce; anything else refused with 503 (overload) is worth a warning. */
const EXPECTED_REFUSALS = new Set(['server_starting', 'server_shutting_down']);

/** Koa and its middleware throw `http-errors` objects; keep their status and message when they are meant for the client. */
function fromHttpError(err: unknown): NucleusError | undefined {
  const e = err as { status?: number; statusCode?: number; expose?: boolean; message?: string; type?: string };
  const status = e?.status ?? e?.statusCode;
  if (typeof status !== 'number' || status < 400 || status >= 500 || !e.expose) return undefined;
  const code = status === 413 ? 'payload_too_large' : status === 415 ? 'unsupported_media_type' : 'bad_request';
  return new NucleusError(status, code, e.message ?? 'bad request');
}

// An API's error body, or the server's own where it has none or its formatter fails.
function bodyOf(format: ErrorBodyFormat | undefined, error: NucleusError, log: Logger): unknown {
  if (format)
    try {
      return format.body(error);
    } catch (err) {
      log.error({ err, prefix: format.prefix }, 'error body format failed');
    }
  return error.toBody();
}

/** How the edge turns what happened below it into an answer: see {@link errorResponder}. */
export interface ErrorResponder {
  /** Throws the error for a request no route answered (404, 405 with `Allow`, 501), as its body should say it. */
  unanswered(ctx: Context): void;
  /** Answers `err` with its status, headers and body; a server fault is logged with its stack, answered without. */
  answer(ctx: Context, err: unknown): void;
}

/**
 * The one place where errors become responses: every error, thrown anywhere below, leaves with its status and
 * headers, as `{"error":{"message","type","code"}}` or, under a prefix an API declared (`errorBody`), in that API's
 * shape. Server faults are logged with their stack and answered without it.
 */
export function errorResponder(logger: Logger, formats?: ExtensionPointView<ErrorBodyFormat>): ErrorResponder {
  // The API whose clients read errors under this path: the longest declared prefix.
  const formatOf = (path: string): ErrorBodyFormat | undefined => {
    let found: ErrorBodyFormat | undefined;
    for (const { value } of formats?.list() ?? [])
      if (path.startsWith(value.prefix) && value.prefix.length > (found?.prefix.length ?? -1)) found = value;
    return found;
  };
  return {
    unanswered(ctx: Context): void {
      if (ctx.body !== undefined) return;
      if (ctx.status === 404) {
        throw new NucleusError(
          404,
          'route_not_found',
          `no route for ${ctx.method} ${ctx.path}; GET /v2 or /admin/plugins list what this server offers`,
        );
      }
      if (ctx.status === 405) {
        const allow = ctx.response.get('allow');
        throw new NucleusError(
          405,
          'method_not_allowed',
          `${ctx.method} is not allowed on ${ctx.path}; it takes ${allow.split(', ').join(' or ')}`,
          { headers: { allow } },
        );
      }
      if (ctx.status === 501) {
        throw new NucleusError(
          501,
          'method_not_implemented',
          `this server does not implement the ${ctx.method} method`,
        );
      }
    },
    answer(ctx: Context, err: unknown): void {
      const error = fromHttpError(err) ?? toNucleusError(err);
      const log = (ctx.state.log as Logger | undefined) ?? logger;
      // A 503 thrown on purpose (starting, draining, overloaded) is the server working as meant: no stack, not an error.
      if (error.status === 503 && err instanceof NucleusError)
        log[EXPECTED_REFUSALS.has(error.code) ? 'info' : 'warn'](
          { requestId: ctx.state.requestId, path: ctx.path, code: error.code },
          `request refused: ${error.message}`,
        );
      else if (error.status >= 500)
        log.error({ err, requestId: ctx.state.requestId, path: ctx.path }, 'request failed');
      ctx.state.errorCode = error.code;
      if (ctx.headerSent || !ctx.writable) return;
      ctx.status = error.status;
      ctx.set(error.headers);
      const answered =
        error.status >= 500 && error.code === 'internal_error'
          ? new NucleusError(500, 'internal_error', `internal error (request ${ctx.state.requestId}): ${error.message}`)
          : error;
      ctx.body = bodyOf(formatOf(ctx.path), answered, log);
    },
  };
}
