import { createHash, timingSafeEqual } from 'node:crypto';
import { type Caller, NucleusError, type Tenancy } from '@nucleus/sdk';
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

/** The key a request or socket came with, as the server knows it from then on: never the secret itself. */
export interface KeyHolder {
  key: ApiKey;
  /** The key's name, or its role when unnamed: what logs show. */
  label: string;
  /** Who its conversations, cache entries and events belong to. */
  tenancy: Tenancy;
}

function digest(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}

/**
 * The configured key a token is, compared in constant time: both sides are hashed to 32 bytes first, so neither the
 * time taken nor an early length check tells how long a key is, and every key is compared.
 */
export function findKey(keys: readonly ApiKey[], token: string | undefined | null): ApiKey | undefined {
  if (!token) return undefined;
  const given = digest(token);
  let found: ApiKey | undefined;
  for (const k of keys) if (timingSafeEqual(digest(k.key), given) && !found) found = k;
  return found;
}

/**
 * The tenant of a key: a short digest of the secret, stable across restarts and the same for a key however it is
 * named, yet not the key. `shareCache` puts user keys in the common prefix-cache namespace; admin keys are always
 * there.
 */
export function holderOf(key: ApiKey, shareCache: boolean): KeyHolder {
  const tenant = createHash('sha256').update('nucleus-tenant\0').update(key.key).digest('hex').slice(0, 16);
  return {
    key,
    label: key.name ?? key.role,
    tenancy: { tenant, ...(key.role === 'user' && !shareCache && { cacheNamespace: tenant }) },
  };
}

/**
 * Checks `Authorization: Bearer <key>` against the configured keys. User routes are open while no
 * key is configured at all; admin routes always need an admin key.
 */
export class Authenticator {
  constructor(
    private readonly keys: () => readonly ApiKey[],
    private readonly shareCache: () => boolean = () => false,
  ) {}

  /**
   * The caller a request's `Authorization` header names, or undefined (no header, an unknown key, or no keys at all).
   * Remembered on the request, so the route's check does not compare again.
   */
  identify(ctx: Context): KeyHolder | undefined {
    const state = ctx.state as { keyHolder?: KeyHolder | null };
    if (state.keyHolder !== undefined) return state.keyHolder ?? undefined;
    const keys = this.keys();
    const token = keys.length ? /^Bearer\s+(.+)$/i.exec(ctx.get('authorization'))?.[1]?.trim() : undefined;
    const key = findKey(keys, token);
    const holder = key ? holderOf(key, this.shareCache()) : undefined;
    state.keyHolder = holder ?? null;
    if (holder) (ctx.state as { tenancy?: Tenancy }).tenancy = holder.tenancy;
    return holder;
  }

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
    if (!/^Bearer\s+(.+)$/i.test(ctx.get('authorization'))) {
      throw new NucleusError(
        401,
        'missing_api_key',
        'this route needs an API key: send "Authorization: Bearer <key>"',
        {
          headers: { 'www-authenticate': 'Bearer' },
        },
      );
    }
    const holder = this.identify(ctx);
    if (!holder)
      throw new NucleusError(401, 'invalid_api_key', 'the API key is not valid', {
        headers: { 'www-authenticate': 'Bearer' },
      });
    if (access === 'admin' && holder.key.role !== 'admin') {
      throw new NucleusError(
        403,
        'forbidden',
        `the key "${holder.label}" has role "${holder.key.role}"; this route needs an admin key`,
      );
    }
    const { key } = holder;
    ctx.state.apiKey = holder.label;
    const caller: Caller = { name: nameOf(key), role: key.role, ...(key.limits ? { limits: key.limits } : {}) };
    ctx.state.caller = caller;
  }
}
