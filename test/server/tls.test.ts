import { strict as assert } from 'node:assert';
import { copyFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { connect } from 'node:tls';
import WebSocket from 'ws';
import { ConfigError } from '@nucleus/core/kernel/config';
import { ListenError } from '@nucleus/core/internal/server/listen-error';
import { tempDir } from '../helpers/paths.js';
import { httpsGet, startWhoamiServer, TLS_FIXTURES, tlsFixture } from '../helpers/secure-server.js';

const cert = (name: string) => join(TLS_FIXTURES, name);
const LOOPBACK_CA = tlsFixture('loopback-cert.pem');
const TEST_CA = tlsFixture('test-ca-cert.pem');
const USER_KEY = 'user-key-tls-0123456789abcdef';

/** Whether a TLS handshake with at most `maxVersion` succeeds. */
function handshake(url: string, maxVersion: 'TLSv1.1' | 'TLSv1.2' | 'TLSv1.3'): Promise<boolean> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const socket = connect({ host: hostname, port: Number(port), ca: LOOPBACK_CA, maxVersion, minVersion: 'TLSv1' });
    socket.once('secureConnect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

describe('TLS: HTTPS, WSS, certificate reload and client certificates', () => {
  it('serves HTTPS and WSS with TLS 1.2 or later, and refuses TLS 1.1', async () => {
    const { server, stop } = await startWhoamiServer({
      'server.tls.cert': cert('loopback-cert.pem'),
      'server.tls.key': cert('loopback-key.pem'),
      'auth.keys': [{ key: USER_KEY, role: 'user', name: 'tls-user' }],
    });
    try {
      assert.match(server.url, /^https:\/\/127\.0\.0\.1:\d+$/);
      const health = await httpsGet(`${server.url}/health`, { ca: LOOPBACK_CA });
      assert.equal(health.status, 200);
      const who = await httpsGet(`${server.url}/whoami`, {
        ca: LOOPBACK_CA,
        headers: { authorization: `Bearer ${USER_KEY}` },
      });
      assert.equal(who.status, 200);
      assert.deepEqual((who.body.caller as { name: string }).name, 'tls-user');
      assert.equal(await handshake(server.url, 'TLSv1.2'), true);
      assert.equal(await handshake(server.url, 'TLSv1.1'), false, 'TLS 1.1 is refused');

      const ws = new WebSocket(`${server.url.replace('https', 'wss')}/ws?token=${USER_KEY}`, { ca: LOOPBACK_CA });
      const welcome = await new Promise<{ type: string }>((resolve, reject) => {
        ws.once('message', (raw) => resolve(JSON.parse(raw.toString()) as { type: string }));
        ws.once('error', reject);
      });
      assert.equal(welcome.type, 'welcome');
      ws.close();
    } finally {
      await stop();
    }
  });

  it('puts a changed certificate in place without a restart; a broken change keeps the previous one', async () => {
    const dir = tempDir('tls-reload');
    const certFile = join(dir, 'server.pem');
    const keyFile = join(dir, 'server-key.pem');
    copyFileSync(cert('loopback-cert.pem'), certFile);
    copyFileSync(cert('loopback-key.pem'), keyFile);
    const { server, stop } = await startWhoamiServer({ 'server.tls.cert': certFile, 'server.tls.key': keyFile });
    // Either certificate is trusted: the test looks at which one the server presents.
    const ca = Buffer.concat([LOOPBACK_CA, TEST_CA]);
    const presented = async () => (await httpsGet(`${server.url}/health`, { ca })).serverFingerprint;
    const waitFor = async (fingerprint: string) => {
      for (let i = 0; i < 100 && (await presented()) !== fingerprint; i++) await new Promise((r) => setTimeout(r, 100));
      return presented();
    };
    try {
      const first = await presented();
      const { X509Certificate } = await import('node:crypto');
      const second = new X509Certificate(tlsFixture('loopback-ca-cert.pem')).fingerprint256;
      assert.notEqual(first, second);
      copyFileSync(cert('loopback-ca-cert.pem'), certFile);
      copyFileSync(cert('loopback-ca-key.pem'), keyFile);
      assert.equal(await waitFor(second), second, 'the new certificate is served');

      // A key that does not match the certificate is not put in place.
      copyFileSync(cert('loopback-key.pem'), keyFile);
      await new Promise((r) => setTimeout(r, 1000));
      assert.equal(await presented(), second, 'the previous certificate stays');
    } finally {
      await stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('maps a client certificate signed by the CA to a role by its CN; the CN alone, from another issuer, is nothing', async () => {
    const { server, stop } = await startWhoamiServer({
      'server.tls.cert': cert('loopback-cert.pem'),
      'server.tls.key': cert('loopback-key.pem'),
      'server.tls.ca': cert('test-ca-cert.pem'),
      'server.tls.clientAuth': 'optional',
      'auth.keys': [{ key: USER_KEY, role: 'user', name: 'tls-user' }],
      'auth.clientCertificates': [{ commonName: 'ops-admin', role: 'admin', name: 'ops' }],
    });
    const admin = { cert: tlsFixture('client-ops-admin-cert.pem'), key: tlsFixture('client-ops-admin-key.pem') };
    const forged = { cert: tlsFixture('client-forged-cert.pem'), key: tlsFixture('client-forged-key.pem') };
    try {
      const plugins = await httpsGet(`${server.url}/admin/plugins`, { ca: LOOPBACK_CA, ...admin });
      assert.equal(plugins.status, 200, 'the admin certificate opens the admin API');
      const who = await httpsGet(`${server.url}/whoami`, { ca: LOOPBACK_CA, ...admin });
      assert.deepEqual(who.body.caller, { name: 'ops', role: 'admin' });
      assert.match(String(who.body.tenant), /^[0-9a-f]{16}$/);

      const fake = await httpsGet(`${server.url}/admin/plugins`, { ca: LOOPBACK_CA, ...forged });
      assert.equal(fake.status, 401, 'a self-signed certificate with the right CN is not trusted');
      const none = await httpsGet(`${server.url}/admin/plugins`, { ca: LOOPBACK_CA });
      assert.equal(none.status, 401);
      assert.equal(none.body.error?.code, 'missing_api_key');

      // A key sent on a connection with the admin certificate is who the request is.
      const keyed = await httpsGet(`${server.url}/admin/plugins`, {
        ca: LOOPBACK_CA,
        ...admin,
        headers: { authorization: `Bearer ${USER_KEY}` },
      });
      assert.equal(keyed.status, 403);
      const wrong = await httpsGet(`${server.url}/whoami`, {
        ca: LOOPBACK_CA,
        ...admin,
        headers: { authorization: 'Bearer not-a-key-0123456789' },
      });
      assert.equal(wrong.status, 401, 'a wrong key is refused even with a good certificate');
    } finally {
      await stop();
    }
  });

  it('with clientAuth "require", refuses the handshake of a client without a certificate signed by the CA', async () => {
    const { server, stop } = await startWhoamiServer({
      'server.tls.cert': cert('loopback-cert.pem'),
      'server.tls.key': cert('loopback-key.pem'),
      'server.tls.ca': cert('test-ca-cert.pem'),
      'server.tls.clientAuth': 'require',
      'auth.keys': [{ key: USER_KEY, role: 'user', name: 'tls-user' }],
    });
    try {
      await assert.rejects(httpsGet(`${server.url}/health`, { ca: LOOPBACK_CA }));
      await assert.rejects(
        httpsGet(`${server.url}/health`, {
          ca: LOOPBACK_CA,
          cert: tlsFixture('client-forged-cert.pem'),
          key: tlsFixture('client-forged-key.pem'),
        }),
      );
      // A certificate the CA signed but that stands for no key connects; the request still needs a key.
      const user = { cert: tlsFixture('client-batch-user-cert.pem'), key: tlsFixture('client-batch-user-key.pem') };
      assert.equal((await httpsGet(`${server.url}/whoami`, { ca: LOOPBACK_CA, ...user })).status, 401);
      const keyed = await httpsGet(`${server.url}/whoami`, {
        ca: LOOPBACK_CA,
        ...user,
        headers: { authorization: `Bearer ${USER_KEY}` },
      });
      assert.equal(keyed.status, 200);
    } finally {
      await stop();
    }
  });

  it('stops at start-up with a message naming the key when the TLS config is incomplete or a file is missing', async () => {
    await assert.rejects(
      startWhoamiServer({ 'server.tls.cert': cert('loopback-cert.pem') }),
      (err: Error) => err instanceof ConfigError && /server\.tls needs both cert and key/.test(err.message),
    );
    await assert.rejects(
      startWhoamiServer({
        'server.tls.cert': cert('loopback-cert.pem'),
        'server.tls.key': cert('loopback-key.pem'),
        'server.tls.clientAuth': 'require',
      }),
      (err: Error) => err instanceof ConfigError && /server\.tls\.ca is not set/.test(err.message),
    );
    await assert.rejects(
      startWhoamiServer({ 'server.tls.cert': cert('missing.pem'), 'server.tls.key': cert('loopback-key.pem') }),
      (err: Error) => err instanceof ListenError && /server\.tls\.cert: cannot read/.test(err.message),
    );
    await assert.rejects(
      startWhoamiServer({
        'server.tls.cert': cert('loopback-cert.pem'),
        'server.tls.key': cert('loopback-ca-key.pem'),
      }),
      (err: Error) => err instanceof ListenError && /not a usable certificate and key/.test(err.message),
    );
  });
});
