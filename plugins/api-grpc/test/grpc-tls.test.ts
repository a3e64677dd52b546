import { strict as assert } from 'node:assert';
import { readFileSync } from 'node:fs';
import { get as httpsGet } from 'node:https';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { credentials, status, type ServiceError } from '@grpc/grpc-js';
import { startTestKernel, type TestKernel } from '@nucleus/sdk/testing';
import { inferenceClient, unary, withKey } from './grpc-client.js';

const PLUGIN = fileURLToPath(new URL('..', import.meta.url));
const REPO = fileURLToPath(new URL('../../..', import.meta.url));
const TLS = join(REPO, 'test/fixtures/tls');
const ADMIN = 'grpc-tls-admin-key-0123456789';
const ROW = [35, 48000, 0.3, 6, 0, 5, 1, 0.2];

describe('gRPC over TLS (server.tls): the same certificate as HTTPS', function () {
  this.timeout(120_000);
  let kit: TestKernel;
  let port: number;
  before(async () => {
    kit = await startTestKernel({
      plugins: [PLUGIN, join(REPO, 'plugins/api-kserve')],
      env: { NUCLEUS_ADMIN_KEY: ADMIN },
      config: {
        'plugin.api-grpc.port': 0,
        'server.tls.cert': join(TLS, 'loopback-cert.pem'),
        'server.tls.key': join(TLS, 'loopback-key.pem'),
      },
    });
    // The HTTP side serves HTTPS with the same certificate; the test kit's plain fetch would not trust it.
    const where = await new Promise<{ port: number }>((resolve, reject) => {
      const req = httpsGet(
        `${kit.url.replace('http:', 'https:')}/admin/grpc`,
        { ca: readFileSync(join(TLS, 'loopback-cert.pem')), headers: { authorization: `Bearer ${ADMIN}` } },
        (res) => {
          let body = '';
          res.on('data', (c) => (body += c));
          res.on('end', () => (res.statusCode === 200 ? resolve(JSON.parse(body)) : reject(new Error(body))));
        },
      );
      req.on('error', reject);
    });
    port = where.port;
  });
  after(async () => {
    await kit?.stop();
  });

  it('infers over TLS for a client that trusts the certificate', async () => {
    const client = inferenceClient(port, credentials.createSsl(readFileSync(join(TLS, 'loopback-cert.pem'))));
    try {
      const answer = await unary<{ outputs: Array<{ name: string }> }>(
        client,
        'ModelInfer',
        {
          model_name: 'tabular-classifier',
          inputs: [{ name: 'features', datatype: 'FP32', shape: [1, 8], contents: { fp32_contents: ROW } }],
        },
        withKey(ADMIN),
      );
      assert.ok(answer.outputs.length > 0, 'the model answered');
    } finally {
      client.close();
    }
  });

  it('refuses a plaintext client and one that does not trust the certificate, and keeps serving', async () => {
    for (const creds of [
      credentials.createInsecure(),
      credentials.createSsl(readFileSync(join(TLS, 'test-ca-cert.pem'))),
    ]) {
      const client = inferenceClient(port, creds);
      try {
        const err = (await unary(client, 'ServerLive', {}, withKey(ADMIN), { deadline: Date.now() + 5_000 }).then(
          () => assert.fail('a call without a trusted TLS handshake must not succeed'),
          (e: ServiceError) => e,
        )) as ServiceError;
        // The handshake fails, so the channel never becomes ready: UNAVAILABLE, or the deadline when it keeps retrying.
        assert.ok([status.UNAVAILABLE, status.DEADLINE_EXCEEDED].includes(err.code), err.message);
      } finally {
        client.close();
      }
    }
    const trusted = inferenceClient(port, credentials.createSsl(readFileSync(join(TLS, 'loopback-cert.pem'))));
    try {
      assert.deepEqual(await unary(trusted, 'ServerLive', {}), { live: true });
    } finally {
      trusted.close();
    }
  });
});
