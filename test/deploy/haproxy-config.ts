/** Where HAProxy listens and the Nucleus instances it balances. */
export interface HaproxyLayout {
  /** The port clients call. */
  port: number;
  /** The port of HAProxy's own statistics page (`/stats;csv`). */
  statsPort: number;
  /** The instances, by name and port (all on 127.0.0.1). */
  servers: readonly { name: string; port: number }[];
}

/**
 * The HAProxy config the README shows, for instances on 127.0.0.1: consistent hashing on `x-conversation-id` (a
 * conversation's prefix cache stays on one instance), `/readyz` health checks, and retries that go to another
 * instance. Requests that say they may be replayed (`Idempotency-Key`) are retried on any failure; the others only
 * when no instance took them (the connection failed, or Nucleus answered 503: starting or draining, not run).
 */
export function haproxyConfig({ port, statsPort, servers }: HaproxyLayout): string {
  const list = (check: (name: string) => string) =>
    servers.map((s, i) => `  server ${s.name} 127.0.0.1:${s.port} id ${i + 1} ${check(s.name)}`).join('\n');
  return `global
  maxconn 1024

defaults
  mode http
  timeout connect 2s
  timeout client 60s
  timeout server 60s
  timeout http-keep-alive 5s
  retries 3
  # Every retry goes to another instance, even one the hash would not pick.
  option redispatch 1

frontend nucleus
  bind 127.0.0.1:${port}
  use_backend nucleus_once if METH_POST !{ req.hdr(idempotency-key) -m found }
  default_backend nucleus

# Idempotent requests: replayed on another instance after any failure, a crash mid-request included.
backend nucleus
  balance hdr(x-conversation-id)
  hash-type consistent
  retry-on conn-failure empty-response response-timeout 503
  option httpchk GET /readyz
  http-check expect status 200
  default-server inter 500ms fall 2 rise 2
  http-response set-header x-served-by %s
${list(() => 'check')}

# The rest: retried only when no instance ran them. Same servers, same ids, so the same hash.
backend nucleus_once
  balance hdr(x-conversation-id)
  hash-type consistent
  retry-on conn-failure 503
  http-response set-header x-served-by %s
${list((name) => `track nucleus/${name}`)}

frontend stats
  bind 127.0.0.1:${statsPort}
  stats enable
  stats uri /stats
`;
}
