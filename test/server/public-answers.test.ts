import { strict as assert } from 'node:assert';
import { gzipSync } from 'node:zlib';
import { ConfigError, loadConfig } from '@nucleus/core/kernel/config';
import { startTestKernel, type TestKernel } from '@nucleus/sdk/testing';

const ADMIN = 'admin-key-public-0123456789';

describe('public answers tell no more than they must', () => {
  let kit: TestKernel;
  before(async () => {
    kit = await startTestKernel({ builtinModels: false, env: { NUCLEUS_ADMIN_KEY: ADMIN } });
  });
  after(async () => {
    await kit.stop();
  });

  it('/ready says why a model is not ready without its file path or ONNX Runtime source paths', async () => {
    kit.kernel.health.set({
      key: 'model:tiny@1',
      severity: 'unready',
      reason:
        'model tiny failed to load: [ONNXRuntimeError] : 1 : FAIL : Load model from /srv/secret-models/tiny/1/model.onnx failed:/onnxruntime_src/onnxruntime/core/graph/model.cc:180 onnxruntime::Model::Model Unknown model file format version.',
    });
    try {
      const res = await kit.request('/ready');
      assert.equal(res.status, 503);
      const text = JSON.stringify(res.body);
      assert.ok(!text.includes('/srv/secret-models') && !text.includes('onnxruntime_src'), text);
      assert.match(text, /model tiny failed to load.*Load model from <path> failed.*Unknown model file format version/);
    } finally {
      kit.kernel.health.clear('model:tiny@1');
    }
  });

  it('answers a chain of encodings (gzip, gzip) 415, not invalid JSON', async () => {
    const res = await fetch(`${kit.url}/admin/config`, {
      method: 'PATCH',
      headers: {
        authorization: `Bearer ${ADMIN}`,
        'content-type': 'application/json',
        'content-encoding': 'gzip,gzip',
      },
      body: gzipSync(gzipSync('{"queue.highWatermark": 10}')),
    });
    assert.equal(res.status, 415);
    const body = (await res.json()) as { error: { code: string; message: string } };
    assert.equal(body.error.code, 'unsupported_media_type');
    assert.match(body.error.message, /Content-Encoding 'gzip,gzip'.*identity, gzip or deflate, applied once/);
  });
});

describe('API keys in the config', () => {
  it('refuses one key configured with two roles, naming both entries', () => {
    const key = 'shared-key-0123456789abcdef';
    assert.throws(
      () =>
        loadConfig({
          env: { NUCLEUS_ADMIN_KEY: key },
          cli: { 'auth.keys': [{ key, role: 'user', name: 'ci' }] },
        }),
      (err: unknown) =>
        err instanceof ConfigError &&
        /auth\.adminKey is the same key as auth\.keys\.0\.key, with role "admin" instead of "user"/.test(err.message),
    );
  });

  it('warns about a short key and a key listed twice with one role, and starts', () => {
    const { warnings } = loadConfig({
      env: {},
      cli: {
        'auth.keys': [
          { key: 'short', role: 'user' },
          { key: 'user-key-0123456789abcdef', role: 'user' },
          { key: 'user-key-0123456789abcdef', role: 'user', name: 'again' },
        ],
      },
    });
    assert.equal(warnings.length, 2, warnings.join('\n'));
    assert.match(warnings[0]!, /auth\.keys\.0\.key is 5 characters long; use a random key of at least 16/);
    assert.match(warnings[1]!, /auth\.keys\.2\.key is the same key as auth\.keys\.1\.key/);
  });
});
