import { strict as assert } from 'node:assert';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { status, type ClientDuplexStream, type Metadata, type ServiceError } from '@grpc/grpc-js';
import { startTestKernel, type TestKernel } from '@nucleus/sdk/testing';
import { failure, inferenceClient, unary, withKey, type InferenceClient } from './grpc-client.js';

const PLUGIN = fileURLToPath(new URL('..', import.meta.url));
const REPO = fileURLToPath(new URL('../../..', import.meta.url));
const STORIES = join(REPO, '..', 'shared', 'models', 'stories260K', 'stories260K.gguf');
const ADMIN = 'grpc-limits-admin-key-0123456789';
const KEYS = {
  gus: { key: 'gus-key-grpc-limits-0123456789', role: 'user', name: 'gus', limits: { requestsPerMinute: 2 } },
  gail: { key: 'gail-key-grpc-limits-0123456789', role: 'user', name: 'gail', limits: { requestsPerMinute: 2 } },
  sid: { key: 'sid-key-grpc-limits-0123456789', role: 'user', name: 'sid', limits: { concurrentStreams: 1 } },
  tess: { key: 'tess-key-grpc-limits-0123456789', role: 'user', name: 'tess', limits: { tokensPerMinute: 5 } },
};
const ROW = [35, 48000, 0.3, 6, 0, 5, 1, 0.2];
const TABULAR = {
  model_name: 'tabular-classifier',
  inputs: [{ name: 'features', datatype: 'FP32', shape: [1, 8], contents: { fp32_contents: ROW } }],
};
const HTTP_INFER = { model: 'tabular-classifier', inputs: { features: [ROW] } };
const generation = (prompt: string, maxTokens: number) => ({
  model_name: 'stories260K',
  id: 'g',
  inputs: [{ name: 'text_input', datatype: 'BYTES', shape: [1], contents: { bytes_contents: [Buffer.from(prompt)] } }],
  parameters: {
    max_tokens: { int64_param: maxTokens },
    temperature: { int64_param: 0 },
    ignore_eos: { bool_param: true },
  },
});

/** A ModelStreamInfer call: its responses as they come, and how it ended (null when it ended OK). */
function openStream(client: InferenceClient, key: string) {
  const call = (client.ModelStreamInfer as (m: Metadata) => ClientDuplexStream<unknown, unknown>)(withKey(key));
  const responses: Array<{ error_message: string }> = [];
  let wake: () => void = () => {};
  call.on('data', (m) => {
    responses.push(m as { error_message: string });
    wake();
  });
  const ended = new Promise<ServiceError | null>((resolve) => {
    call.on('end', () => resolve(null));
    call.on('error', (e) => resolve(e as ServiceError));
  });
  const first = new Promise<void>((resolve) => (wake = resolve));
  return { call, responses, ended, first };
}

describe('gRPC calls under the rate limits HTTP requests have (one budget per key)', function () {
  this.timeout(120_000);
  let kit: TestKernel;
  let client: InferenceClient;
  const http = (key: string) =>
    kit.request('/infer', { body: HTTP_INFER, headers: { authorization: `Bearer ${key}` } });

  before(async () => {
    kit = await startTestKernel({
      plugins: [PLUGIN, join(REPO, 'plugins/api-kserve'), join(REPO, 'plugins/rate-limit')],
      env: { NUCLEUS_ADMIN_KEY: ADMIN },
      config: { 'plugin.api-grpc.port': 0, 'scheduler.batchWindowMs': 5, 'auth.keys': Object.values(KEYS) },
    });
    const where = await kit.request('/admin/grpc', { headers: { authorization: `Bearer ${ADMIN}` } });
    assert.equal(where.status, 200, JSON.stringify(where.body));
    client = inferenceClient((where.body as { port: number }).port);
  });
  after(async () => {
    client?.close();
    await kit?.stop();
  });

  it('refuses a call with RESOURCE_EXHAUSTED and retry-after once HTTP requests used up the key budget', async () => {
    for (let i = 0; i < 2; i++) assert.equal((await http(KEYS.gus.key)).status, 200);
    const refused = await failure(unary(client, 'ModelInfer', TABULAR, withKey(KEYS.gus.key)));
    assert.equal(refused.code, status.RESOURCE_EXHAUSTED, refused.details);
    assert.match(refused.details, /limited to 2 requests per minute/);
    assert.equal(refused.metadata.get('nucleus-error-code')[0], 'rate_limit_exceeded');
    assert.ok(Number(refused.metadata.get('retry-after')[0]) >= 1, String(refused.metadata.get('retry-after')));
    // Health calls are not limited, as HTTP probes are not.
    assert.deepEqual(await unary(client, 'ServerLive', {}, withKey(KEYS.gus.key)), { live: true });
  });

  it('refuses an HTTP request once gRPC calls used up the same budget', async () => {
    for (let i = 0; i < 2; i++) {
      const answer = await unary<{ model_name: string }>(client, 'ModelInfer', TABULAR, withKey(KEYS.gail.key));
      assert.equal(answer.model_name, 'tabular-classifier');
    }
    const refused = await http(KEYS.gail.key);
    assert.equal(refused.status, 429);
    assert.equal((refused.body as { error: { code: string } }).error.code, 'rate_limit_exceeded');
  });

  it('holds one of the key concurrent streams per ModelStreamInfer call', async function () {
    if (!existsSync(STORIES)) this.skip();
    const long = openStream(client, KEYS.sid.key);
    long.call.write(generation('Once', 300));
    await long.first;
    const second = openStream(client, KEYS.sid.key);
    second.call.end();
    const refused = await second.ended;
    assert.equal(refused?.code, status.RESOURCE_EXHAUSTED, refused?.details);
    assert.equal(refused.metadata.get('nucleus-error-code')[0], 'too_many_streams');
    assert.equal(refused.metadata.get('retry-after')[0], '1');
    // A unary call streams nothing: it is not held back by the cap.
    const unaryAnswer = await unary<{ model_name: string }>(client, 'ModelInfer', TABULAR, withKey(KEYS.sid.key));
    assert.equal(unaryAnswer.model_name, 'tabular-classifier');
    long.call.cancel();
    assert.equal((await long.ended)?.code, status.CANCELLED);
    // The slot comes back once the server has let go of the cancelled call (a bounded wait for that).
    let again: ServiceError | null = null;
    for (let i = 0; i < 50; i++) {
      const next = openStream(client, KEYS.sid.key);
      next.call.write(generation('Hi', 2));
      next.call.end();
      again = await next.ended;
      if (again === null) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.equal(again, null, again?.details);
  });

  it('charges the tokens of a generation to the key tokens per minute', async function () {
    if (!existsSync(STORIES)) this.skip();
    const answer = await unary<{ outputs: unknown[] }>(
      client,
      'ModelInfer',
      generation('the quick brown fox', 4),
      withKey(KEYS.tess.key),
    );
    assert.equal(answer.outputs.length, 1);
    // The tokens are charged as the generation ends, which may be reported just after the answer went out.
    let refused: ServiceError | undefined;
    for (let i = 0; i < 50 && !refused; i++) {
      try {
        await unary(client, 'ModelInfer', TABULAR, withKey(KEYS.tess.key));
        await new Promise((r) => setTimeout(r, 20));
      } catch (err) {
        refused = err as ServiceError;
      }
    }
    assert.equal(refused?.code, status.RESOURCE_EXHAUSTED);
    assert.equal(refused.metadata.get('nucleus-error-code')[0], 'token_quota_exceeded');
    assert.equal((await http(KEYS.tess.key)).status, 429);
  });
});
