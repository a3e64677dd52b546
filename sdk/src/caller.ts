/** A key's own limits (`auth.keys[].limits`); a field left out takes the rate-limit plugin's default, null lifts it. */
export interface KeyLimits {
  readonly requestsPerMinute?: number | null;
  readonly tokensPerMinute?: number | null;
  readonly concurrentStreams?: number | null;
}

/** Who sent a request, known once its key is checked and before its body is read. */
export interface Caller {
  /** The key's `name`, or `unnamed-<fingerprint>` for a key without one; never the key itself. */
  readonly name: string;
  readonly role: 'admin' | 'user';
  readonly limits?: KeyLimits;
}

/** The request's caller: undefined on a public route, or on a user route while no key is configured. */
export function callerOf(ctx: { readonly state: unknown }): Caller | undefined {
  return (ctx.state as { caller?: Caller }).caller;
}

/** Who may call the route a request goes to (set before its body is read); undefined when no route takes it. */
export function routeAccessOf(ctx: { readonly state: unknown }): 'public' | 'user' | 'admin' | undefined {
  return (ctx.state as { access?: 'public' | 'user' | 'admin' }).access;
}
