/** The `type` field of an error body, following the OpenAI error shape. */
export type ErrorType =
  | 'invalid_request_error'
  | 'authentication_error'
  | 'permission_error'
  | 'not_found_error'
  | 'conflict_error'
  | 'rate_limit_error'
  | 'timeout_error'
  | 'server_error'
  | 'unavailable_error';

const TYPE_BY_STATUS: Record<number, ErrorType> = {
  400: 'invalid_request_error',
  401: 'authentication_error',
  403: 'permission_error',
  404: 'not_found_error',
  405: 'invalid_request_error',
  408: 'timeout_error',
  409: 'conflict_error',
  413: 'invalid_request_error',
  415: 'invalid_request_error',
  422: 'invalid_request_error',
  429: 'rate_limit_error',
  431: 'invalid_request_error',
  503: 'unavailable_error',
};

/** The one JSON error body every Nucleus endpoint answers with. */
export interface ErrorBody {
  error: { message: string; type: ErrorType; code: string; param?: string };
}

/** An error that knows its HTTP status and a stable machine-readable code; the server turns it into an {@link ErrorBody}. */
export class NucleusError extends Error {
  readonly status: number;
  readonly code: string;
  readonly type: ErrorType;
  readonly param: string | undefined;
  /** Extra response headers, e.g. `Retry-After`. */
  readonly headers: Record<string, string>;

  constructor(
    status: number,
    code: string,
    message: string,
    options: { param?: string; headers?: Record<string, string>; cause?: unknown } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'NucleusError';
    this.status = status;
    this.code = code;
    this.type = TYPE_BY_STATUS[status] ?? 'server_error';
    this.param = options.param;
    this.headers = options.headers ?? {};
  }

  /** The response body for this error. */
  toBody(): ErrorBody {
    const error: ErrorBody['error'] = { message: this.message, type: this.type, code: this.code };
    if (this.param !== undefined) error.param = this.param;
    return { error };
  }
}

/** 400: the request is malformed or names something invalid. */
export function badRequest(code: string, message: string, param?: string): NucleusError {
  return new NucleusError(400, code, message, param === undefined ? {} : { param });
}

/** 404: the thing the request names does not exist. */
export function notFound(code: string, message: string): NucleusError {
  return new NucleusError(404, code, message);
}

/** 503: the server cannot take the request now; `retryAfterS` becomes a Retry-After header. */
export function unavailable(code: string, message: string, retryAfterS?: number): NucleusError {
  return new NucleusError(
    503,
    code,
    message,
    retryAfterS === undefined ? {} : { headers: { 'retry-after': String(retryAfterS) } },
  );
}

/** Wraps anything thrown into a NucleusError, keeping typed ones as they are. */
export function toNucleusError(err: unknown): NucleusError {
  if (err instanceof NucleusError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new NucleusError(500, 'internal_error', message, { cause: err });
}
