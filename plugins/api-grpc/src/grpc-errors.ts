import { Metadata, status, type StatusObject } from '@grpc/grpc-js';
import { NucleusError, toNucleusError } from '@nucleus/sdk';

/** Engine refusals that mean "too much work now, come back later", answered RESOURCE_EXHAUSTED rather than UNAVAILABLE. */
const ADMISSION_CODES = new Set(['server_overloaded', 'queue_full', 'rate_limited', 'too_many_streams']);

/** The gRPC status code for an HTTP status, as the gRPC-over-HTTP mapping and Triton use them. */
function codeOf(error: NucleusError): status {
  if (error.status === 429 || (error.status === 503 && ADMISSION_CODES.has(error.code)))
    return status.RESOURCE_EXHAUSTED;
  switch (error.status) {
    case 400:
    case 413:
    case 415:
    case 422:
    case 431:
      return status.INVALID_ARGUMENT;
    case 401:
      return status.UNAUTHENTICATED;
    case 403:
      return status.PERMISSION_DENIED;
    case 404:
      return status.NOT_FOUND;
    case 405:
    case 501:
      return status.UNIMPLEMENTED;
    case 408:
    case 504:
      return status.DEADLINE_EXCEEDED;
    case 409:
      return status.FAILED_PRECONDITION;
    case 499:
      return status.CANCELLED;
    case 503:
      return status.UNAVAILABLE;
    default:
      return status.INTERNAL;
  }
}

/**
 * A NucleusError as the status a gRPC call ends with: the code mapped from its HTTP status, its message as the
 * details, and in the trailing metadata its machine-readable `nucleus-error-code` (and `nucleus-error-param`) and,
 * for a refusal that says when to come back, `retry-after` in seconds as HTTP's Retry-After header gives it.
 */
export function toStatus(err: unknown, requestId: string): Partial<StatusObject> & { code: status; details: string } {
  const error = toNucleusError(err);
  const metadata = new Metadata();
  metadata.set('nucleus-error-code', error.code);
  if (error.param !== undefined) metadata.set('nucleus-error-param', error.param);
  const retryAfter = error.headers['retry-after'];
  if (retryAfter !== undefined) metadata.set('retry-after', retryAfter);
  const details =
    error.status >= 500 && error.code === 'internal_error'
      ? `internal error (request ${requestId}): ${error.message}`
      : error.message;
  return { code: codeOf(error), details, metadata };
}

/** The HTTP status a call's end is reported with in `request.end` events, so dashboards count both protocols alike. */
export function httpStatusOf(err: unknown): number {
  return toNucleusError(err).status;
}

/** 400 for a request message that does not say what the RPC needs. */
export function invalidArgument(code: string, message: string, param?: string): NucleusError {
  return new NucleusError(400, code, message, param === undefined ? {} : { param });
}
