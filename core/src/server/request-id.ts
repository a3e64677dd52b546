import { randomUUID } from 'node:crypto';
import type { Context, Next } from 'koa';

const VALID = /^[\w.:-]{1,128}$/;

/** Gives every request an id: the client's `x-request-id` when it is sane, else a new UUID; echoed on every response. */
export async function requestIdMiddleware(ctx: Context, next: Next): Promise<void> {
  const sent = ctx.get('x-request-id');
  const id = VALID.test(sent) ? sent : randomUUID();
  ctx.state.requestId = id;
  ctx.set('x-request-id', id);
  await next();
}
