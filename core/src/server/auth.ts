import { createHash, timingSafeEqual } from 'node:crypto';
import { type Caller, NucleusError } from '@nucleus/sdk';
import type { Context } from 'koa';
import type { NucleusConfig } from '../kernel/config/index.js';

/** Who may call a route. */
export type Access = 'public' | 'user' | 'admin';

/** An API key from config (`auth.keys[]`). */
export type ApiKey = NucleusConfig['auth']['keys'][number];

// What a key without a name is called in metrics and limits: a short fingerprint, which does not reveal the key.
function nameOf(key: ApiKey): string {
  return key.name ?? `unnamed-${createHash('sha256').update(key.key).digest('hex').slice(0, 8)}`;
}

function sameKey(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/**
 * Checks `Authorization: Bearer <key>` against the configured keys. User routes are open while no
 * key is configured at all; admin routes always need an admin key.
 */
export class Authenticator {
  constructor(private readonly keys: () => readonly ApiKey[]) {}

  /** Throws 401 or 403 unless the request may use a route with this access level. */
  check(ctx: Context, access: Access): void {
    if (access === 'public') return;
    const keys = this.keys();
    const hasAdmin = keys.some((k) => k.role === 'admin');
    if (access === 'user' && keys.length === 0) return;
    if (access === 'admin' && !hasAdmin) {
      throw new NucleusError(
        403,
        'admin_disabled',
        'admin API is disabled: no admin key is configured; set NUCLEUS_ADMIN_KEY or add an auth.keys entry with role "admin"',
      );
    }
    const header = ctx.get('authorization');
    const match = /^Bearer\s+(.+)$/i.exec(header);
    if (!match) {
      throw new NucleusError(
        401,
        'missing_api_key',
        'this route needs an API key: send "Authorization: Bearer <key>"',
        {
          headers: { 'www-authenticate': 'Bearer' },
        },
      );
    }
    const key = keys.find((k) => sameKey(k.key, match[1]!.trim()));
    if (!key)
      throw new NucleusError(401, 'invalid_api_key', 'the API key is not valid', {
        headers: { 'www-authenticate': 'Bearer' },
      });
    if (access === 'admin' && key.role !== 'admin') {
      throw new NucleusError(
        403,
        'forbidden',
        `the key "${key.name ?? 'unnamed'}" has role "${key.role}"; this route needs an admin key`,
      );
    }
    ctx.state.apiKey = key.name ?? key.role;
    const caller: Caller = { name: nameOf(key), role: key.role, ...(key.limits ? { limits: key.limits } : {}) };
    ctx.state.caller = caller;
  }
}
