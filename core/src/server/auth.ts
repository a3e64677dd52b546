import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { TLSSocket } from 'node:tls';
import {
  type AuthenticatedCaller,
  type Caller,
  NucleusError,
  type CredentialResolution,
  type CredentialSource,
  type RequestAuthenticator,
  type Tenancy,
  toNucleusError,
} from '@nucleus/sdk';
import type { Context } from 'koa';
import type { NucleusConfig } from '../kernel/config/index.js';
import { JwtVerifier, type TokenIdentity } from './jwt-verifier.js';

/** Who may call a route. */
export type Access = 'public' | 'user' | 'admin';

/** An API key from config (`auth.keys[]`). */
export type ApiKey = NucleusConfig['auth']['keys'][number];

// What a key without a name is called in metrics and limits: a short fingerprint, which does not reveal the key.
function nameOf(key: ApiKey): string {
  return key.name ?? `unnamed-${createHash('sha256').update(key.key).digest('hex').slice(0, 8)}`;
}

/** What the rate limits and routes see of a key: its name, role and own limits; never the secret. */
export function callerFor(key: ApiKey): Caller {
  return { name: nameOf(key), role: key.role, ...(key.limits ? { limits: key.limits } : {}) };
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

// Each configured key's digest, made once per key object (a config change brings new ones), not per request.
const keyDigests = new WeakMap<ApiKey, Buffer>();
function digestOf(key: ApiKey): Buffer {
  let d = keyDigests.get(key);
  if (!d) keyDigests.set(key, (d = digest(key.key)));
  return d;
}

/**
 * The configured key a token is, compared in constant time: both sides are hashed to 32 bytes first, so neither the
 * time taken nor an early length check tells how long a key is, and every key is compared.
 */
export function findKey(keys: readonly ApiKey[], token: string | undefined | null): ApiKey | undefined {
  if (!token) return undefined;
  const given = digest(token);
  let found: ApiKey | undefined;
  for (const k of keys) if (timingSafeEqual(digestOf(k), given) && !found) found = k;
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

/** A client certificate that stands for a key (`auth.clientCertificates[]`). */
export type ClientCertificate = NucleusConfig['auth']['clientCertificates'][number];

/** Where a request or an upgrade came from: the header it sent and the connection it came on. */
type Incoming = Pick<IncomingMessage, 'headers' | 'socket'>;

function bearerOf(req: Incoming): string | undefined {
  return /^Bearer\s+(.+)$/i.exec(req.headers.authorization ?? '')?.[1]?.trim() || undefined;
}

// Identities that are not keys still need an `ApiKey` for the tenant digest and the names downstream. Their `key` holds
// no secret, and starts with a NUL no configured key could sensibly have.
function tokenKey(identity: TokenIdentity): ApiKey {
  return { key: `\0jwt\0${identity.issuer}\0${identity.subject}`, role: identity.role, name: identity.name };
}

function certificateKey(certificate: ClientCertificate): ApiKey {
  return {
    key: `\0cert\0${certificate.commonName}`,
    role: certificate.role,
    name: certificate.name ?? certificate.commonName,
  };
}

/** How a caller may prove who it is besides API keys. */
export interface AuthenticatorOptions {
  /** Signed tokens (`auth.jwt`), when configured. */
  jwt?: JwtVerifier;
  /** Client certificates that stand for a key (`auth.clientCertificates`). */
  certificates?: () => readonly ClientCertificate[];
  /** Where a request without a bearer credential may carry one otherwise (the `credentials` point: session cookies). */
  credentials?: () => readonly CredentialSource[];
}

/**
 * Checks `Authorization: Bearer <key>` against the configured keys, a bearer JWT against the identity provider
 * (`auth.jwt`), or the TLS client certificate against `auth.clientCertificates`; a bearer credential takes precedence
 * over the certificate. User routes are open while none of these is configured; admin routes always need an admin.
 */
export class Authenticator {
  // The configured certificate a TLS connection's verified client certificate is, found once per connection.
  private readonly bySocket = new WeakMap<object, ApiKey | null>();

  constructor(
    private readonly keys: () => readonly ApiKey[],
    private readonly shareCache: () => boolean = () => false,
    private readonly options: AuthenticatorOptions = {},
  ) {}

  /** True when some way to authenticate is configured; while none is, user routes and `/ws` are open. */
  configured(): boolean {
    return this.keys().length > 0 || this.options.jwt !== undefined || (this.options.certificates?.().length ?? 0) > 0;
  }

  /**
   * Verifies a bearer JWT before anything asks who the caller is (verification may fetch the provider's keys, so it
   * cannot happen inside {@link identify}). Never throws: a token that fails is remembered, and {@link check}
   * answers with the reason. Does nothing for requests without a JWT.
   */
  async verifyToken(ctx: Context): Promise<void> {
    const state = ctx.state as { keyHolder?: KeyHolder | null; authError?: NucleusError };
    const jwt = this.options.jwt;
    if (!jwt || state.keyHolder !== undefined) return;
    let token = bearerOf(ctx.req);
    // A session signed in with a token stands for that token: it is verified again on each request, so the session
    // ends when the token expires or its key leaves the provider's key set.
    const sourced = token === undefined ? this.sourced(ctx.req, false) : undefined;
    if (sourced && 'token' in sourced) token = sourced.token;
    if (!token || !JwtVerifier.looksLikeJwt(token) || findKey(this.keys(), token)) return;
    try {
      this.remember(ctx, holderOf(tokenKey(await jwt.verify(token)), this.shareCache()));
    } catch (err) {
      state.keyHolder = null;
      const refused = toNucleusError(err);
      state.authError = sourced
        ? new NucleusError(
            refused.status,
            refused.code,
            `the token this session signed in with is refused now: ${refused.message}; sign in again`,
          )
        : refused;
    }
  }

  /**
   * The caller a request's `Authorization` header (or client certificate) names, or undefined (no credential, an
   * unknown key, or nothing configured). Remembered on the request, so the route's check does not compare again.
   */
  identify(ctx: Context): KeyHolder | undefined {
    const state = ctx.state as { keyHolder?: KeyHolder | null };
    if (state.keyHolder !== undefined) return state.keyHolder ?? undefined;
    const sourced = bearerOf(ctx.req) ? undefined : this.sourced(ctx.req, false);
    if (sourced && 'refused' in sourced) {
      (ctx.state as { authError?: NucleusError }).authError = new NucleusError(
        403,
        'credential_refused',
        sourced.refused,
      );
      return this.remember(ctx, undefined);
    }
    const key = sourced ? findKey(this.keys(), sourced.token) : this.keyOf(ctx.req);
    if (sourced && !key)
      (ctx.state as { authError?: NucleusError }).authError = new NucleusError(
        401,
        'invalid_api_key',
        'the key this session signed in with is no longer configured; sign in again',
      );
    return this.remember(ctx, key ? holderOf(key, this.shareCache()) : undefined);
  }

  /**
   * Who a WebSocket upgrade is: its key (header or `?token=`), its JWT or its client certificate; or a message saying
   * why it is refused. Everyone is an admin while no way to authenticate is configured.
   */
  async identifySocket(req: IncomingMessage): Promise<KeyHolder | 'open' | string> {
    if (!this.configured()) return 'open';
    let token = bearerOf(req) ?? new URL(req.url ?? '/', 'http://x').searchParams.get('token') ?? undefined;
    if (!token) {
      const sourced = this.sourced(req, true);
      if (sourced && 'refused' in sourced) return sourced.refused;
      token = sourced?.token;
    }
    const key = token ? findKey(this.keys(), token) : this.certificateOf(req);
    if (key) return holderOf(key, this.shareCache());
    if (token && this.options.jwt && JwtVerifier.looksLikeJwt(token)) {
      try {
        return holderOf(tokenKey(await this.options.jwt.verify(token)), this.shareCache());
      } catch (err) {
        return toNucleusError(err).message;
      }
    }
    return 'this socket needs an API key: send "Authorization: Bearer <key>" or ?token=<key>';
  }

  /** Throws 401 or 403 unless the request may use a route with this access level. */
  check(ctx: Context, access: Access): void {
    if (access === 'public') return;
    if (access === 'user' && !this.configured()) return;
    const hasAdmin =
      this.keys().some((k) => k.role === 'admin') ||
      (this.options.jwt?.grantsAdmin() ?? false) ||
      (this.options.certificates?.() ?? []).some((c) => c.role === 'admin');
    if (access === 'admin' && !hasAdmin) {
      throw new NucleusError(
        403,
        'admin_disabled',
        'admin API is disabled: no admin key is configured; set NUCLEUS_ADMIN_KEY or add an auth.keys entry with role "admin"',
      );
    }
    const holder = this.identify(ctx);
    if (!holder) {
      const refused = (ctx.state as { authError?: NucleusError }).authError;
      if (refused) throw refused;
      if (!bearerOf(ctx.req))
        throw new NucleusError(
          401,
          'missing_api_key',
          'this route needs an API key: send "Authorization: Bearer <key>"',
          {
            headers: { 'www-authenticate': 'Bearer' },
          },
        );
      throw new NucleusError(401, 'invalid_api_key', 'the API key is not valid', {
        headers: { 'www-authenticate': 'Bearer' },
      });
    }
    if (access === 'admin' && holder.key.role !== 'admin') {
      throw new NucleusError(
        403,
        'forbidden',
        `the key "${holder.label}" has role "${holder.key.role}"; this route needs an admin key`,
      );
    }
    const { key } = holder;
    ctx.state.apiKey = holder.label;
    ctx.state.caller = callerFor(key);
  }

  /**
   * The same check for a call that did not come through HTTP (gRPC): only its `authorization` value counts (such a
   * call has no TLS socket of ours to read a client certificate from).
   */
  forCalls(): RequestAuthenticator {
    return {
      authenticate: async (authorization, access): Promise<AuthenticatedCaller> => {
        const state: Record<string, unknown> = {};
        const ctx = {
          state,
          req: { headers: authorization === undefined ? {} : { authorization }, socket: {} },
        } as unknown as Context;
        await this.verifyToken(ctx);
        this.check(ctx, access);
        const holder = state.keyHolder as KeyHolder | null | undefined;
        return {
          ...(state.caller !== undefined && { caller: state.caller as Caller }),
          tenancy: holder?.tenancy ?? {},
          ...(holder && { label: holder.label }),
        };
      },
    };
  }

  /** What the `credentials` sources make of a request that sent no bearer credential; the first answer wins. */
  private sourced(req: Incoming & { method?: string }, upgrade: boolean): CredentialResolution | undefined {
    const sources = this.options.credentials?.() ?? [];
    if (sources.length === 0) return undefined;
    const request = {
      method: req.method ?? 'GET',
      headers: req.headers,
      encrypted: (req.socket as Partial<TLSSocket>).encrypted === true,
      upgrade,
    };
    for (const source of sources) {
      const found = source.resolve(request);
      if (found) return found;
    }
    return undefined;
  }

  private remember(ctx: Context, holder: KeyHolder | undefined): KeyHolder | undefined {
    (ctx.state as { keyHolder?: KeyHolder | null }).keyHolder = holder ?? null;
    if (holder) (ctx.state as { tenancy?: Tenancy }).tenancy = holder.tenancy;
    return holder;
  }

  // A bearer credential wins: a request that sends a wrong key is refused even on a connection with a good certificate.
  private keyOf(req: Incoming): ApiKey | undefined {
    const token = bearerOf(req);
    if (token) return findKey(this.keys(), token);
    return this.certificateOf(req);
  }

  /** The configured certificate whose CN the connection's client certificate has, if the CA verified it. */
  private certificateOf(req: Incoming): ApiKey | undefined {
    const socket = req.socket as Partial<TLSSocket>;
    const certificates = this.options.certificates?.() ?? [];
    if (!socket.encrypted || !socket.authorized || certificates.length === 0) return undefined;
    let found = this.bySocket.get(socket);
    if (found === undefined) {
      const cn = socket.getPeerCertificate?.().subject?.CN;
      const match = typeof cn === 'string' ? certificates.find((c) => c.commonName === cn) : undefined;
      found = match ? certificateKey(match) : null;
      this.bySocket.set(socket, found);
    }
    return found ?? undefined;
  }
}
