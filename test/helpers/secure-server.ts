import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { request } from 'node:https';
import type { TLSSocket } from 'node:tls';
import { NucleusServer } from '@nucleus/core';
import { REPO_ROOT, tempDir } from './paths.js';
import { writePlugin } from './plugin-fixtures.js';

/** The folder of test certificates (see its README). */
export const TLS_FIXTURES = join(REPO_ROOT, 'test/fixtures/tls');

/** A fixture file's contents. */
export function tlsFixture(name: string): Buffer {
  return readFileSync(join(TLS_FIXTURES, name));
}

/** An answer over HTTPS, with the certificate the server presented. */
export interface HttpsAnswer {
  status: number;
  body: { [key: string]: unknown; error?: { code: string; message: string } };
  headers: Record<string, string | string[] | undefined>;
  serverFingerprint: string;
}

/** One GET over a fresh TLS connection (no agent, no session reuse), trusting `ca`. */
export function httpsGet(
  url: string,
  options: { ca: Buffer; cert?: Buffer; key?: Buffer; headers?: Record<string, string> },
): Promise<HttpsAnswer> {
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      { ca: options.ca, cert: options.cert, key: options.key, headers: options.headers, agent: false },
      (res) => {
        const fingerprint = (res.socket as TLSSocket).getPeerCertificate().fingerprint256;
        let text = '';
        res.on('data', (d: Buffer) => (text += d.toString()));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            body: text ? (JSON.parse(text) as HttpsAnswer['body']) : {},
            headers: res.headers,
            serverFingerprint: fingerprint,
          }),
        );
      },
    );
    req.on('error', reject);
    req.end();
  });
}

/**
 * A server with two plugin routes (user access): `GET /whoami` answers the caller the server saw (its name, role
 * and tenant), `POST /echo` the JSON body it read. `config` goes in as CLI values.
 */
export async function startWhoamiServer(
  config: Record<string, unknown>,
  logDestination?: { write: (line: string) => void },
): Promise<{ server: NucleusServer; stop: () => Promise<void> }> {
  const folder = tempDir('whoami');
  writePlugin(folder, {
    id: 'whoami',
    activate: `ctx.contribute(ExtensionPoints.routes, { method: 'GET', path: '/whoami', access: 'user',
      handler: (c) => ({ caller: c.state.caller ?? null, tenant: c.state.tenancy?.tenant ?? null }) });
      ctx.contribute(ExtensionPoints.routes, { method: 'POST', path: '/echo', access: 'user',
      handler: (c) => ({ got: c.request.body }) });`,
  });
  try {
    const server = await NucleusServer.start({
      env: {},
      pluginFolders: [folder],
      nodeModules: [],
      builtinModels: false,
      cli: { 'server.port': 0, 'plugins.watch': false, 'logging.level': 'silent', ...config },
      ...(logDestination && { logDestination }),
    });
    return {
      server,
      stop: async () => {
        await server.stop();
        rmSync(folder, { recursive: true, force: true });
      },
    };
  } catch (err) {
    rmSync(folder, { recursive: true, force: true });
    throw err;
  }
}
