import type { RouteContext } from './contributions.js';

/**
 * Who a request belongs to, as the server's authentication found it. API plugins copy it into the engine requests
 * they make (`GenerateRequest`), so conversations and prefix-cache entries stay with the key that made them.
 */
export interface Tenancy {
  /** An opaque id of the API key (never the key): conversations belong to it. Absent while no key is configured. */
  tenant?: string;
  /** The prefix-cache namespace: prompts are reused only within it. Absent: the common one. */
  cacheNamespace?: string;
}

/** The tenancy of a request (empty when the server has no keys, or the route is public and no key was sent). */
export function tenancyOf(ctx: Pick<RouteContext, 'state'>): Tenancy {
  return (ctx.state as { tenancy?: Tenancy }).tenancy ?? {};
}
