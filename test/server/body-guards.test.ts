import { strict as assert } from 'node:assert';
import { rmSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { join } from 'node:path';
import { startTestKernel, type TestKernel } from '@nucleus/sdk/testing';
import { tempDir } from '../helpers/paths.js';
import { writePlugin } from '../helpers/plugin-fixtures.js';

const USER = 'user-key-0123456789';
const errorOf = (body: unknown) => (body as { error: { code: string; message: string } }).error;

describe('request bodies: the key is checked before the body is read, and deep nesting is refused', function () {
  this.timeout(60_000);
  let folder: string;
  let kit: TestKernel;
  before(async () => {
    folder = tempDir('body-guards');
    writePlugin(folder, {
      id: 'svc',
      activate: `let bodies = 0;
        ctx.contribute(ExtensionPoints.routes, { method: 'POST', path: '/svc/echo', handler: (http) => { bodies++; return { keys: Object.keys(http.request.body ?? {}) }; } });
        ctx.contribute(ExtensionPoints.routes, { method: 'GET', path: '/svc/bodies', handler: () => ({ bodies }) });`,
    });
    kit = await startTestKernel({
      plugins: [join(folder, 'svc')],
      builtinModels: false,
      config: { 'auth.keys': [{ key: USER, role: 'user', name: 'alice' }] },
    });
  });
  after(async () => {
    await kit.stop();
    rmSync(folder, { recursive: true, force: true });
  });
  const auth = { authorization: `Bearer ${USER}` };

  /** Sends the headers and 1 KiB of a 9 MB JSON body that never comes; resolves with the answer given meanwhile. */
  function partialBody(path: string, headers: Record<string, string> = {}) {
    return new Promise<{ status: number; connection?: string; body: unknown }>((resolve, reject) => {
      const req = httpRequest(new URL(path, kit.url), {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'content-length': String(9_000_000), ...headers },
      });
      req.on('response', (res) => {
        let text = '';
        res.setEncoding('utf8').on('data', (d: string) => {
          text += d;
        });
        res.on('end', () => {
          req.destroy();
          resolve({
            status: res.statusCode ?? 0,
            connection: res.headers.connection,
            body: JSON.parse(text) as unknown,
          });
        });
      });
      req.on('error', reject);
      req.write(`{"prompt":"${'x'.repeat(1024)}`);
    });
  }

  it('answers a keyless request 401 without reading its body, and closes the connection', async () => {
    const res = await partialBody('/svc/echo');
    assert.equal(res.status, 401);
    assert.equal(errorOf(res.body).code, 'missing_api_key');
    assert.equal(res.connection, 'close');
    const wrong = await partialBody('/svc/echo', { authorization: 'Bearer not-a-key' });
    assert.deepEqual([wrong.status, errorOf(wrong.body).code], [401, 'invalid_api_key']);
    // A path no route takes needs no body either.
    const unknown = await partialBody('/svc/nowhere', auth);
    assert.deepEqual([unknown.status, errorOf(unknown.body).code], [404, 'route_not_found']);
    assert.deepEqual((await kit.request('/svc/bodies', { headers: auth })).body, { bodies: 0 });
    // With the key, the same route reads and parses its body.
    const ok = await kit.request('/svc/echo', { headers: auth, body: { prompt: 'x' } });
    assert.deepEqual([ok.status, ok.body], [200, { keys: ['prompt'] }]);
  });

  it('refuses JSON nested deeper than server.jsonMaxDepth with 400 json_too_deep, on the main thread and on the parser thread', async () => {
    const deepObject = `${'{"a":'.repeat(100_000)}1${'}'.repeat(100_000)}`;
    const deepArray = `${'['.repeat(1_000_000)}${']'.repeat(1_000_000)}`;
    const shallow = (depth: number) => `${'['.repeat(depth - 1)}{"a":1}${']'.repeat(depth - 1)}`;
    const cases: [string, string, number][] = [
      // Above server.offloadJsonBytes (256 KiB): parsed on the worker thread.
      ['a 100,000-level object', deepObject, 400],
      ['a 1,000,000-level array', deepArray, 400],
      // Below it: parsed on the main thread.
      ['65 levels', `{"a":${shallow(64)}}`, 400],
      ['64 levels', `{"a":${shallow(63)}}`, 200],
      ['brackets inside strings do not count', JSON.stringify({ a: '['.repeat(1000), b: '\\"[[[' }), 200],
    ];
    for (const [label, body, status] of cases) {
      const res = await kit.request('/svc/echo', { headers: { ...auth, 'content-type': 'application/json' }, body });
      assert.equal(res.status, status, `${label}: ${JSON.stringify(res.body).slice(0, 200)}`);
      if (status === 400) {
        assert.equal(errorOf(res.body).code, 'json_too_deep', label);
        assert.match(errorOf(res.body).message, /more than 64 levels deep \(server\.jsonMaxDepth\)/, label);
      }
    }
  });

  it('the limit is changed at run time', async () => {
    const body = `{"a":${'['.repeat(10)}${']'.repeat(10)}}`;
    const admin = await kit.request('/admin/config', { method: 'PATCH', body: { 'server.jsonMaxDepth': 8 } });
    // No admin key here: the admin API is off, so the change goes through the kernel's config directly.
    assert.equal(admin.status, 403);
    kit.kernel.config.patch({ 'server.jsonMaxDepth': 8 }, { kind: 'runtime', name: 'test' });
    try {
      const res = await kit.request('/svc/echo', { headers: { ...auth, 'content-type': 'application/json' }, body });
      assert.deepEqual([res.status, errorOf(res.body).code], [400, 'json_too_deep']);
    } finally {
      kit.kernel.config.patch({ 'server.jsonMaxDepth': 64 }, { kind: 'runtime', name: 'test' });
    }
  });
});
