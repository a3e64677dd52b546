import type { RouteContext } from '@nucleus/sdk';

/** The parsed JSON body, or undefined when there is none. */
export function requestBody(ctx: RouteContext): unknown {
  return (ctx.request as { body?: unknown }).body;
}

/** The bytes after the JSON inference header of a binary v2 request (`Inference-Header-Content-Length`), or undefined. */
export function binaryData(ctx: RouteContext): Uint8Array | undefined {
  return (ctx.request as { binaryData?: Uint8Array }).binaryData;
}

/** An AbortSignal that fires when the client goes away before the response is sent. */
export function clientSignal(ctx: RouteContext): AbortSignal {
  const controller = new AbortController();
  const res = ctx.res;
  res.once('close', () => {
    if (!res.writableFinished) controller.abort();
  });
  return controller.signal;
}

/** The server's id for this request (`x-request-id`), for telemetry. */
export function requestId(ctx: RouteContext): string | undefined {
  const id = (ctx.state as { requestId?: unknown }).requestId;
  return typeof id === 'string' ? id : undefined;
}
