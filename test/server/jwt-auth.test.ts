import { strict as assert } from 'node:assert';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK } from 'jose';
import WebSocket from 'ws';
import { startWhoamiServer } from '../helpers/secure-server.js';

const ISSUER = 'http://127.0.0.1/test-issuer';
const AUDIENCE = 'nucleus-test';
const API_KEY = 'plain-api-key-jwt-0123456789';

interface Answer {
  status: number;
  body: { caller?: { name: string; role: string }; tenant?: string; error?: { code: string; message: string } };
  headers: Record<string, string | string[] | undefined>;
}

function get(url: string, token?: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    request(url, { headers: token ? { authorization: `Bearer ${token}` } : {} }, (res) => {
      let text = '';
      res.on('data', (d: Buffer) => (text += d.toString()));
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) as Answer['body'], headers: res.headers }),
      );
    })
      .on('error', reject)
      .end();
  });
}

/** An identity provider's key set on loopback: what it publishes can change (rotation) or fail. */
class KeySetServer {
  keys: JWK[] = [];
  failing = false;
  fetches = 0;
  private readonly server: Server = createServer((_req, res) => {
    this.fetches++;
    if (this.failing) return void res.writeHead(500).end('down');
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: this.keys }));
  });

  async start(): Promise<string> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/jwks.json`;
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

interface SigningKey {
  kid: string;
  privateKey: CryptoKey;
  jwk: JWK;
}

async function signingKey(kid: string): Promise<SigningKey> {
  const { privateKey, publicKey } = await generateKeyPair('RS256');
  return { kid, privateKey, jwk: { ...(await exportJWK(publicKey)), kid, alg: 'RS256', use: 'sig' } };
}

function token(
  key: SigningKey,
  claims: Record<string, unknown> = {},
  options: { audience?: string; expiresAt?: number; kid?: string } = {},
): Promise<string> {
  return new SignJWT({ preferred_username: 'ada', roles: ['reader'], ...claims })
    .setProtectedHeader({ alg: 'RS256', kid: options.kid ?? key.kid })
    .setIssuer(ISSUER)
    .setAudience(options.audience ?? AUDIENCE)
    .setSubject(String(claims.sub ?? 'user-ada'))
    .setIssuedAt()
    .setExpirationTime(options.expiresAt ?? Math.floor(Date.now() / 1000) + 300)
    .sign(key.privateKey);
}

const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');

describe('signed tokens (auth.jwt) against an identity provider key set on loopback', () => {
  const provider = new KeySetServer();
  let k1: SigningKey;
  let k2: SigningKey;
  let url: string;
  let stop: () => Promise<void>;

  before(async () => {
    k1 = await signingKey('k1');
    k2 = await signingKey('k2');
    provider.keys = [k1.jwk];
    const jwksUrl = await provider.start();
    const started = await startWhoamiServer({
      'auth.keys': [{ key: API_KEY, role: 'user', name: 'plain' }],
      'auth.jwt.issuer': ISSUER,
      'auth.jwt.audience': AUDIENCE,
      'auth.jwt.jwksUrl': jwksUrl,
      'auth.jwt.nameClaim': 'preferred_username',
      'auth.jwt.adminRoles': ['nucleus-admin'],
      'auth.jwt.jwksCooldownMs': 0,
    });
    url = started.server.url;
    stop = started.stop;
  });
  after(async () => {
    await stop?.();
    await provider.close();
  });

  it('takes a valid token as a user named by its name claim, its tenant from iss and sub; API keys still work', async () => {
    const ada = await get(`${url}/whoami`, await token(k1));
    assert.equal(ada.status, 200);
    assert.deepEqual(ada.body.caller, { name: 'ada', role: 'user' });
    const again = await get(`${url}/whoami`, await token(k1, { preferred_username: 'ada-renamed' }));
    assert.equal(again.body.tenant, ada.body.tenant, 'the tenant follows sub, not the name');
    const other = await get(`${url}/whoami`, await token(k1, { sub: 'user-bob', preferred_username: 'bob' }));
    assert.notEqual(other.body.tenant, ada.body.tenant);
    assert.equal((await get(`${url}/whoami`, API_KEY)).status, 200);
    assert.equal((await get(`${url}/admin/plugins`, await token(k1))).status, 403, 'a user token is no admin');
  });

  it('makes a token whose role claim holds an admin role an admin caller', async () => {
    const admin = await token(k1, { roles: ['reader', 'nucleus-admin'] });
    assert.equal((await get(`${url}/admin/plugins`, admin)).status, 200);
    assert.deepEqual((await get(`${url}/whoami`, admin)).body.caller, { name: 'ada', role: 'admin' });
  });

  it('refuses an expired token, a wrong audience, a wrong key and alg "none" with 401 invalid_token saying why', async () => {
    const expired = await get(
      `${url}/whoami`,
      await token(k1, {}, { expiresAt: Math.floor(Date.now() / 1000) - 3600 }),
    );
    assert.equal(expired.status, 401);
    assert.equal(expired.body.error?.code, 'invalid_token');
    assert.match(expired.body.error!.message, /expired/);
    assert.match(String(expired.headers['www-authenticate']), /invalid_token/);

    const audience = await get(`${url}/whoami`, await token(k1, {}, { audience: 'another-service' }));
    assert.equal(audience.status, 401);
    assert.match(audience.body.error!.message, /not meant for this server/);

    // Signed by a key of its own under the kid the provider publishes.
    const impostor = await signingKey('k1');
    const forged = await get(`${url}/whoami`, await token(impostor));
    assert.equal(forged.status, 401);
    assert.match(forged.body.error!.message, /signature does not verify/);

    const unsigned = `${b64({ alg: 'none', typ: 'JWT' })}.${b64({
      iss: ISSUER,
      aud: AUDIENCE,
      sub: 'user-ada',
      roles: ['nucleus-admin'],
      exp: Math.floor(Date.now() / 1000) + 300,
    })}.`;
    const none = await get(`${url}/admin/plugins`, unsigned);
    assert.equal(none.status, 401);
    assert.equal(none.body.error?.code, 'invalid_token');

    // An HMAC token "signed" with the provider's public key as the secret (the classic confusion) is refused too.
    const hmac = await new SignJWT({ roles: ['nucleus-admin'] })
      .setProtectedHeader({ alg: 'HS256', kid: 'k1' })
      .setIssuer(ISSUER)
      .setAudience(AUDIENCE)
      .setSubject('user-ada')
      .setExpirationTime('5m')
      .sign(new TextEncoder().encode(JSON.stringify(k1.jwk)));
    assert.equal((await get(`${url}/admin/plugins`, hmac)).status, 401);
  });

  it('follows a key rotation: a token from a new key fetches the key set again; the retired key stops working', async () => {
    const before = await token(k1);
    provider.keys = [k2.jwk];
    const fetched = provider.fetches;
    const rotated = await get(`${url}/whoami`, await token(k2));
    assert.equal(rotated.status, 200, 'the new key is fetched and accepted');
    assert.ok(provider.fetches > fetched);
    const cached = provider.fetches;
    assert.equal((await get(`${url}/whoami`, await token(k2))).status, 200);
    assert.equal(provider.fetches, cached, 'a known key is served from the cache');
    const retired = await get(`${url}/whoami`, before);
    assert.equal(retired.status, 401);
    assert.match(retired.body.error!.message, /key the provider's key set does not hold/);
  });

  it('answers 503 jwks_unavailable while the key set cannot be fetched, and accepts tokens on /ws', async () => {
    const ws = new WebSocket(`${url.replace('http', 'ws')}/ws?token=${await token(k2)}`);
    const welcome = await new Promise<{ type: string }>((resolve, reject) => {
      ws.once('message', (raw) => resolve(JSON.parse(raw.toString()) as { type: string }));
      ws.once('error', reject);
    });
    assert.equal(welcome.type, 'welcome');
    ws.close();

    provider.failing = true;
    const k3 = await signingKey('k3');
    const down = await get(`${url}/whoami`, await token(k3));
    assert.equal(down.status, 503);
    assert.equal(down.body.error?.code, 'jwks_unavailable');
    assert.ok(down.headers['retry-after']);
    provider.failing = false;
  });
});
