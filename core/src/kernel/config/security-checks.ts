import type { ConfigIssue, ConfigSource } from './config-error.js';
import type { NucleusConfig } from './config-schema.js';

/**
 * What `server.tls`, `auth.clientCertificates` and `auth.jwt` get wrong together, beyond what their schema can say:
 * half a certificate, client certificates without a CA to check them, a token provider named in part. Each would
 * otherwise leave the server less protected than its config reads.
 */
export function securityChecks(
  config: Pick<NucleusConfig, 'server' | 'auth'>,
  sourceOf: (segments: readonly string[]) => ConfigSource,
): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  const issue = (segments: string[], message: string) =>
    issues.push({ path: segments.join('.'), message, source: sourceOf(segments) });
  const tls = config.server?.tls;
  if (tls) {
    if (!tls.cert !== !tls.key)
      issue(
        ['server', 'tls', tls.cert ? 'key' : 'cert'],
        'server.tls needs both cert and key (PEM files) to serve HTTPS; set the other one, or neither for plain HTTP',
      );
    if (tls.clientAuth !== 'none' && !tls.ca)
      issue(
        ['server', 'tls', 'ca'],
        `server.tls.clientAuth is "${tls.clientAuth}" but server.tls.ca is not set: name the PEM file of the CA that signs client certificates`,
      );
    if (tls.clientAuth !== 'none' && !tls.cert)
      issue(
        ['server', 'tls', 'clientAuth'],
        'server.tls.clientAuth needs HTTPS: set server.tls.cert and server.tls.key',
      );
  }
  if ((config.auth?.clientCertificates?.length ?? 0) > 0 && (tls?.clientAuth ?? 'none') === 'none')
    issue(
      ['auth', 'clientCertificates'],
      'auth.clientCertificates has entries but server.tls.clientAuth is "none", so no client sends a ' +
        'certificate; set it to "optional" or "require"',
    );
  const jwt = config.auth?.jwt;
  if (jwt && (jwt.issuer || jwt.audience || jwt.jwksUrl)) {
    for (const key of ['issuer', 'audience', 'jwksUrl'] as const)
      if (!jwt[key])
        issue(
          ['auth', 'jwt', key],
          `auth.jwt.${key} is not set: signed tokens need issuer, audience and jwksUrl together (or none of them, to turn them off)`,
        );
    if (jwt.jwksUrl) {
      let url: URL | undefined;
      try {
        url = new URL(jwt.jwksUrl);
      } catch {
        url = undefined;
      }
      if (!url || (url.protocol !== 'https:' && url.protocol !== 'http:'))
        issue(['auth', 'jwt', 'jwksUrl'], `auth.jwt.jwksUrl "${jwt.jwksUrl}" is not an http(s) URL`);
    }
  }
  return issues;
}
