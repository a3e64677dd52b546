import { strict as assert } from 'node:assert';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { TestKernel } from '@nucleus/sdk/testing';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import WebSocket from 'ws';
import { startDashboard } from './dashboard-kernel.js';

const ISSUER = 'http://127.0.0.1/dashboard-issuer';
const AUDIENCE = 'nucleus-dashboard-test';
const ADMIN = 'admin-key-dashboard-jwt-0123456';

describe('dashboard plugin: signing in with a token (auth.jwt)', () => {
  let kit: TestKernel;
  let sign: (claims: Record<string, unknown>, expiresAt?: number) => Promise<string>;
  const provider = createServer();

  before(async () => {
    const { privateKey, publicKey } = await generateKeyPair('RS256');
    const jwk = { ...(await exportJWK(publicKey)), kid: 'k1', alg: 'RS256', use: 'sig' };
    provider.on('request', (_req, res) =>
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: [jwk] })),
    );
    await new Promise<void>((resolve) => provider.listen(0, '127.0.0.1', resolve));
    sign = (claims, expiresAt = Math.floor(Date.now() / 1000) + 300) =>
      new SignJWT({ roles: ['reader'], ...claims })
        .setProtectedHeader({ alg: 'RS256', kid: 'k1' })
        .setIssuer(ISSUER)
        .setAudience(AUDIENCE)
        .setSubject(String(claims.sub ?? 'user-ada'))
        .setIssuedAt()
        .setExpirationTime(expiresAt)
        .sign(privateKey);
    kit = await startDashboard(
      { admin: ADMIN },
      {
        'auth.jwt.issuer': ISSUER,
        'auth.jwt.audience': AUDIENCE,
        'auth.jwt.jwksUrl': `http://127.0.0.1:${(provider.address() as AddressInfo).port}/jwks.json`,
        'auth.jwt.nameClaim': 'preferred_username',
        'auth.jwt.adminRoles': ['nucleus-admin'],
        'auth.jwt.clockToleranceSeconds': 0,
      },
    );
  });
  after(async () => {
    await kit?.stop();
    await new Promise((resolve) => provider.close(resolve));
  });

  async function signIn(token: string) {
    const res = await fetch(`${kit.url}/dashboard/api/session`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}` },
    });
    const body = (await res.json()) as { role: string; name: string; csrfToken: string; error?: { message: string } };
    assert.equal(res.status, 201, JSON.stringify(body));
    return { cookie: res.headers.get('set-cookie')!.split(';')[0]!, ...body };
  }

  it('a token with an admin role makes an admin session that reads, acts and opens /ws', async () => {
    const session = await signIn(await sign({ preferred_username: 'ada', roles: ['nucleus-admin'] }));
    assert.deepEqual([session.role, session.name], ['admin', 'ada']);
    const me = await kit.request('/dashboard/api/session', { headers: { cookie: session.cookie } });
    assert.equal(me.status, 200, JSON.stringify(me.body));
    assert.deepEqual((me.body as { mode: string; role: string }).role, 'admin');
    const models = await kit.request('/dashboard/api/models', { headers: { cookie: session.cookie } });
    assert.equal(models.status, 200, JSON.stringify(models.body));
    const reload = await kit.request('/admin/plugins/stats/reload', {
      method: 'POST',
      headers: { cookie: session.cookie, 'x-csrf-token': session.csrfToken },
    });
    assert.equal(reload.status, 200, JSON.stringify(reload.body));
    const logs = await kit.request('/dashboard/api/logs', { headers: { cookie: session.cookie } });
    assert.equal(logs.status, 200, 'an admin-only route');

    const host = new URL(kit.url).host;
    const welcome = await new Promise<{ topics: string[] }>((resolve, reject) => {
      const ws = new WebSocket(`${kit.url.replace('http', 'ws')}/ws`, {
        headers: { cookie: session.cookie, origin: `http://${host}` },
      });
      ws.once('message', (raw) => {
        ws.close();
        resolve(JSON.parse(raw.toString()) as { topics: string[] });
      });
      ws.once('unexpected-response', (_req, res) => reject(new Error(`refused: ${res.statusCode}`)));
      ws.once('error', reject);
    });
    assert.ok(welcome.topics.includes('logs'), 'the socket is an admin one');
  });

  it('a token without an admin role makes a user session, which the server refuses admin actions', async () => {
    const session = await signIn(await sign({ sub: 'user-bob', preferred_username: 'bob' }));
    assert.deepEqual([session.role, session.name], ['user', 'bob']);
    const models = await kit.request('/dashboard/api/models', { headers: { cookie: session.cookie } });
    assert.equal(models.status, 200, JSON.stringify(models.body));
    const reload = await kit.request('/admin/plugins/stats/reload', {
      method: 'POST',
      headers: { cookie: session.cookie, 'x-csrf-token': session.csrfToken },
    });
    assert.equal(reload.status, 403);
    assert.equal((reload.body as { error: { code: string } }).error.code, 'forbidden');
  });

  it('a session ends with its token: once it expires, the cookie gets 401 saying to sign in again', async () => {
    const expiresAt = Math.floor(Date.now() / 1000) + 3;
    const session = await signIn(await sign({ preferred_username: 'cy' }, expiresAt));
    const read = () => kit.request('/dashboard/api/models', { headers: { cookie: session.cookie } });
    // Signing in may take a while on a busy machine; the token must still be valid when the first read goes.
    if (Date.now() < expiresAt * 1000 - 500) assert.equal((await read()).status, 200);
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, expiresAt * 1000 - Date.now() + 1100)));
    const expired = await read();
    assert.equal(expired.status, 401, JSON.stringify(expired.body));
    const error = (expired.body as { error: { code: string; message: string } }).error;
    assert.equal(error.code, 'invalid_token');
    assert.match(error.message, /session signed in with.*expired.*sign in again/);
  });
});
