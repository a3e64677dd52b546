import type { Caller } from './caller.js';
import type { Tenancy } from './tenancy.js';

/** Who a request authenticated as, for a protocol served outside the HTTP server. */
export interface AuthenticatedCaller {
  /** Undefined on a user call while no key is configured (everything is open then). */
  readonly caller?: Caller;
  /** What the key's requests are filed under (prefix-cache namespace, conversations); empty while none is configured. */
  readonly tenancy: Tenancy;
  /** The key's name, or its role when unnamed: what logs show; never the key. */
  readonly label?: string;
}

/**
 * The HTTP server's key check for protocols that do not come through it (registered under `Services.auth`): the same
 * keys, JWTs and roles, compared in constant time. Rejects with the NucleusError HTTP would answer (401 missing or
 * invalid key, 403 wrong role or admin disabled).
 */
export interface RequestAuthenticator {
  /** Checks the `authorization` value a call carried (`Bearer <key or JWT>`) for a route of this access level. */
  authenticate(authorization: string | undefined, access: 'user' | 'admin'): Promise<AuthenticatedCaller>;
}
