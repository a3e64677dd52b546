import type { Context } from 'koa';

const HELD = Symbol('nucleus.heldUses');

/**
 * The plugin uses a request is inside while its route runs: the `preParsing` and `onRequest` hooks that wrap it. A
 * route that disables a plugin passes them on, so the drain does not wait for the very request that asked for it.
 */
export function heldUses(ctx: Context): unknown[] {
  const state = ctx.state as { [HELD]?: unknown[] };
  let held = state[HELD];
  if (!held) state[HELD] = held = [];
  return held;
}
