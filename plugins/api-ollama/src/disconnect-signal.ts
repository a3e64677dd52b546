import type { RouteContext } from '@nucleus/sdk';

/** Aborts when the client disconnects before the response is complete (for requests answered in one piece). */
export function disconnectSignal(ctx: RouteContext): AbortSignal {
  const controller = new AbortController();
  ctx.res.once('close', () => {
    if (!ctx.res.writableFinished) controller.abort();
  });
  return controller.signal;
}
