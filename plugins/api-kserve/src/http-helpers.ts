import type { RouteContext } from '@nucleus/sdk';

/** The parsed JSON body, or undefined when there is none. */
export function requestBody(ctx: RouteContext): unknown {
  return (ctx.request as { body?: unknown }).body;
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
