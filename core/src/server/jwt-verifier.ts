import { NucleusError, unavailable } from '@nucleus/sdk';
import { createRemoteJWKSet, errors, jwtVerify, type JWTPayload } from 'jose';
import type { NucleusConfig } from '../kernel/config/index.js';

/** `auth.jwt` from the config. */
export type JwtConfig = NucleusConfig['auth']['jwt'];

/** Who a verified token says its bearer is. */
export interface TokenIdentity {
  /** `iss` and `sub`: stable for one user of one provider, whatever their name claim says. */
  issuer: string;
  subject: string;
  /** The name claim's value (`sub` when the claim is absent): what logs and metrics show. */
  name: string;
  role: 'admin' | 'user';
}

// Three base64url parts: the shape of a signed JWT, and a shape no sensible API key has.
const JWS_SHAPE = /^[\w-]+\.[\w-]+\.[\w-]*$/;

// How long one fetch of the key set may take before the request waiting on it gets 503.
const JWKS_TIMEOUT_MS = 5000;

function invalid(reason: string): NucleusError {
  return new NucleusError(401, 'invalid_token', `the bearer token is not valid: ${reason}`, {
    headers: { 'www-authenticate': 'Bearer error="invalid_token"' },
  });
}

/** The value at a dotted path of the claims (`realm_access.roles`), as a list of role names. */
function rolesAt(payload: JWTPayload, path: string): string[] {
  let value: unknown = payload;
  for (const part of path.split('.')) value = (value as Record<string, unknown> | undefined)?.[part];
  if (typeof value === 'string') return value.split(/\s+/).filter(Boolean);
  if (Array.isArray(value)) return value.filter((v): v is string => typeof v === 'string');
  return [];
}

/**
 * Verifies bearer JWTs against an OpenID Connect provider's key set (`auth.jwt`): signature by a key of the set, an
 * allowed asymmetric algorithm (never `none`, never HMAC), `iss`, `aud`, `exp` and `nbf`. The key set is fetched on
 * first use, kept for `jwksCacheMs`, and fetched again early when a token names a key it does not hold (the provider
 * rotated its keys), at most once per `jwksCooldownMs`.
 */
export class JwtVerifier {
  private readonly keySet: ReturnType<typeof createRemoteJWKSet>;

  private constructor(private readonly config: JwtConfig & { issuer: string; audience: string; jwksUrl: string }) {
    this.keySet = createRemoteJWKSet(new URL(config.jwksUrl), {
      cacheMaxAge: config.jwksCacheMs,
      cooldownDuration: config.jwksCooldownMs,
      timeoutDuration: JWKS_TIMEOUT_MS,
    });
  }

  /** A verifier for `auth.jwt`, or undefined while signed tokens are off (no issuer). */
  static fromConfig(config: JwtConfig): JwtVerifier | undefined {
    const { issuer, audience, jwksUrl } = config;
    if (!issuer || !audience || !jwksUrl) return undefined;
    return new JwtVerifier({ ...config, issuer, audience, jwksUrl });
  }

  /** True when a bearer token has the shape of a signed JWT, so it is worth verifying rather than a wrong key. */
  static looksLikeJwt(token: string): boolean {
    return JWS_SHAPE.test(token);
  }

  /** Whether a token can make its bearer an admin at all: false when no admin role is configured. */
  grantsAdmin(): boolean {
    return this.config.adminRoles.length > 0;
  }

  /** The identity a token proves; throws 401 `invalid_token` saying why not, 403 for a token without a role, 503 while the key set cannot be fetched. */
  async verify(token: string): Promise<TokenIdentity> {
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, this.keySet, {
        issuer: this.config.issuer,
        audience: this.config.audience,
        algorithms: this.config.algorithms,
        clockTolerance: this.config.clockToleranceSeconds,
        requiredClaims: ['sub', 'exp'],
      }));
    } catch (err) {
      throw this.explain(err);
    }
    const roles = rolesAt(payload, this.config.roleClaim);
    const admin = roles.some((r) => this.config.adminRoles.includes(r));
    const { userRoles } = this.config;
    if (!admin && userRoles.length > 0 && !roles.some((r) => userRoles.includes(r)))
      throw new NucleusError(
        403,
        'forbidden',
        `the token's "${this.config.roleClaim}" claim holds none of the roles this server accepts (${[...userRoles, ...this.config.adminRoles].join(', ')})`,
      );
    const named = payload[this.config.nameClaim];
    return {
      issuer: payload.iss!,
      subject: payload.sub!,
      name: typeof named === 'string' && named ? named : payload.sub!,
      role: admin ? 'admin' : 'user',
    };
  }

  private explain(err: unknown): NucleusError {
    if (err instanceof errors.JWTExpired) return invalid('it has expired ("exp" is in the past)');
    if (err instanceof errors.JWTClaimValidationFailed) {
      if (err.claim === 'aud')
        return invalid(`it is not meant for this server ("aud" is not "${this.config.audience}")`);
      if (err.claim === 'iss') return invalid(`it was not issued by ${this.config.issuer} ("iss" differs)`);
      return invalid(`its "${err.claim}" claim failed the check (${err.reason})`);
    }
    if (err instanceof errors.JOSEAlgNotAllowed)
      return invalid(`its algorithm is not accepted; this server takes ${this.config.algorithms.join(', ')}`);
    if (err instanceof errors.JWKSNoMatchingKey)
      return invalid("it is signed by a key the provider's key set does not hold");
    if (err instanceof errors.JWSSignatureVerificationFailed) return invalid('its signature does not verify');
    // A key set that times out, cannot be reached, answers other than 200 or is not JSON: the provider's fault, not the token's.
    const keySetFailed =
      err instanceof errors.JWKSTimeout ||
      err instanceof errors.JWKSInvalid ||
      err instanceof TypeError ||
      (err instanceof errors.JOSEError && err.code === 'ERR_JOSE_GENERIC' && /JSON Web Key Set/.test(err.message));
    if (keySetFailed)
      return unavailable(
        'jwks_unavailable',
        `the identity provider's key set (${this.config.jwksUrl}) could not be fetched to check the token; retry shortly`,
        5,
      );
    if (err instanceof errors.JOSEError) return invalid(err.message);
    return unavailable(
      'jwks_unavailable',
      `the token could not be checked against the identity provider's key set: ${(err as Error).message}`,
      5,
    );
  }
}
