import { strict as assert } from 'node:assert';
import { existsSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Metadata, status, type ClientDuplexStream } from '@grpc/grpc-js';
import type { NucleusEvents } from '@nucleus/sdk';
import { startTestKernel, type TestKernel } from '@nucleus/sdk/testing';
import { failure, inferenceClient, rawCall, unary, withKey, type InferenceClient } from './grpc-client.js';

const PLUGIN = fileURLToPath(new URL('..', import.meta.url));
const REPO = fileURLToPath(new URL('../../..', import.meta.url));
const STORIES = join(REPO, '..', 'shared', 'models', 'stories260K', 'stories260K.gguf');
const ADMIN = 'grpc-admin-key-0123456789';
const USER = 'grpc-user-key-0123456789';

interface Tensor {
  name: string;
  datatype: string;
  shape: string[];
  contents?: { fp32_contents: number[]; int64_contents: string[]; bytes_contents: Buffer[] } | null;
}
interface InferResponse {
  model_name: string;
  model_version: string;
  id: string;
  outputs: Tensor[];
  raw_output_contents: Buffer[];
}

async function start(config: Record<string, unknown> = {}): Promise<{ kit: TestKernel; port: number }> {
  const kit = await startTestKernel({
    plugins: [PLUGIN, join(REPO, 'plugins/api-kserve'), join(REPO, 'plugins/metrics')],
    env: { NUCLEUS_ADMIN_KEY: ADMIN },
    config: { 'plugin.api-grpc.port': 0, 'auth.keys': [{ key: USER, role: 'user', name: 'grpc-user' }], ...config },
  });
  const where = await kit.request('/admin/grpc', { headers: { authorization: `Bearer ${ADMIN}` } });
  const plugins = await kit.request('/admin/plugins', { headers: { authorization: `Bearer ${ADMIN}` } });
  assert.equal(where.status, 200, JSON.stringify(plugins.body));
  return { kit, port: (where.body as { port: number }).port };
}

/** One tabular row (8 features) as a ModelInferRequest with typed contents. */
function tabularRequest(rows: number[][], id = ''): Record<string, unknown> {
  return {
    model_name: 'tabular-classifier',
    id,
    inputs: [{ name: 'features', datatype: 'FP32', shape: [rows.length, 8], contents: { fp32_contents: rows.flat() } }],
  };
}

const ROW = [35, 48000, 0.3, 6, 0, 5, 1, 0.2];

describe('gRPC KServe v2 (official grpc-js client, independent message layout)', function () {
  this.timeout(120_000);
  let kit: TestKernel;
  let port: number;
  let client: InferenceClient;
  const events: Array<{ type: string; e: unknown }> = [];
  before(async () => {
    ({ kit, port } = await start());
    client = inferenceClient(port);
    for (const type of ['request.start', 'request.end', 'admin.action', 'auth.refused'] as const)
      kit.kernel.events.on(type, (e: unknown) => events.push({ type, e }));
  });
  after(async () => {
    client?.close();
    await kit?.stop();
  });

  it('answers ServerLive, ServerReady and ServerMetadata without a key', async () => {
    assert.deepEqual(await unary(client, 'ServerLive', {}), { live: true });
    assert.deepEqual(await unary(client, 'ServerReady', {}), { ready: true });
    const meta = await unary<{ name: string; extensions: string[] }>(client, 'ServerMetadata', {});
    assert.equal(meta.name, 'nucleus');
    assert.deepEqual(meta.extensions, ['model_repository']);
  });

  it('describes a model and says it is ready, with the user key', async () => {
    const meta = await unary<{
      name: string;
      platform: string;
      versions: string[];
      inputs: Tensor[];
      outputs: Tensor[];
    }>(client, 'ModelMetadata', { name: 'tabular-classifier' }, withKey(USER));
    assert.equal(meta.platform, 'onnxruntime_onnx');
    assert.deepEqual(meta.versions, ['1']);
    assert.deepEqual(
      meta.inputs.map((t) => [t.name, t.datatype, t.shape]),
      [['features', 'FP32', ['-1', '8']]],
    );
    assert.deepEqual(meta.outputs.map((t) => t.name).sort(), ['label', 'probabilities']);
    assert.deepEqual(await unary(client, 'ModelReady', { name: 'tabular-classifier' }, withKey(USER)), { ready: true });
  });

  it('infers with typed contents and gives the numbers HTTP gives', async () => {
    const rows = [ROW, [60, 20000, 0.9, 2, 4, 1, 0, 0.8]];
    const res = await unary<InferResponse>(client, 'ModelInfer', tabularRequest(rows, 'req-1'), withKey(USER));
    assert.equal(res.model_name, 'tabular-classifier');
    assert.equal(res.id, 'req-1');
    const http = await kit.request('/v2/models/tabular-classifier/infer', {
      headers: { authorization: `Bearer ${USER}` },
      body: { inputs: [{ name: 'features', datatype: 'FP32', shape: [2, 8], data: rows.flat() }] },
    });
    assert.equal(http.status, 200, JSON.stringify(http.body));
    const httpOut = (http.body as { outputs: Array<{ name: string; data: number[] }> }).outputs;
    const probabilities = res.outputs.find((o) => o.name === 'probabilities')!;
    assert.equal(probabilities.datatype, 'FP32');
    assert.equal(probabilities.shape[0], '2');
    const want = httpOut.find((o) => o.name === 'probabilities')!.data;
    assert.equal(probabilities.contents!.fp32_contents.length, want.length);
    probabilities.contents!.fp32_contents.forEach((v, i) => assert.ok(Math.abs(v - want[i]!) < 1e-6));
    const label = res.outputs.find((o) => o.name === 'label')!;
    assert.deepEqual(label.contents!.int64_contents.map(Number), httpOut.find((o) => o.name === 'label')!.data);
  });

  it('takes raw_input_contents and answers with raw_output_contents, in the outputs asked for', async () => {
    const bytes = Buffer.from(new Float32Array(ROW).buffer);
    const res = await unary<InferResponse>(
      client,
      'ModelInfer',
      {
        model_name: 'tabular-classifier',
        inputs: [{ name: 'features', datatype: 'FP32', shape: [1, 8] }],
        outputs: [{ name: 'probabilities' }],
        raw_input_contents: [bytes],
      },
      withKey(USER),
    );
    assert.deepEqual(
      res.outputs.map((o) => o.name),
      ['probabilities'],
    );
    assert.equal(res.raw_output_contents.length, 1);
    const raw = res.raw_output_contents[0]!;
    const probabilities = new Float32Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength));
    const typed = await unary<InferResponse>(client, 'ModelInfer', tabularRequest([ROW]), withKey(USER));
    assert.deepEqual(
      Array.from(probabilities),
      typed.outputs.find((o) => o.name === 'probabilities')!.contents!.fp32_contents,
    );
    assert.ok(Math.abs(probabilities.reduce((a, b) => a + b, 0) - 1) < 1e-4);
  });

  it('runs the MLP classifier too', async () => {
    const res = await unary<InferResponse>(
      client,
      'ModelInfer',
      {
        model_name: 'mlp-classifier',
        inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 4], contents: { fp32_contents: [1, 2, 3, 4] } }],
      },
      withKey(USER),
    );
    assert.equal(res.model_name, 'mlp-classifier');
    assert.ok(res.outputs.some((o) => o.name === 'label'));
  });

  it('maps bad input to the proper status, and keeps serving', async () => {
    const unknown = await failure(
      unary(client, 'ModelInfer', { ...tabularRequest([ROW]), model_name: 'no-such-model' }, withKey(USER)),
    );
    assert.equal(unknown.code, status.NOT_FOUND);
    assert.match(unknown.details, /no-such-model/);
    assert.equal(unknown.metadata.get('nucleus-error-code')[0], 'model_not_found');

    const wrongType = await failure(
      unary(
        client,
        'ModelInfer',
        {
          model_name: 'tabular-classifier',
          inputs: [
            {
              name: 'features',
              datatype: 'INT32',
              shape: [1, 8],
              contents: { int_contents: [1, 2, 3, 4, 5, 6, 7, 8] },
            },
          ],
        },
        withKey(USER),
      ),
    );
    assert.equal(wrongType.code, status.INVALID_ARGUMENT);
    assert.match(wrongType.details, /expects FP32/);

    const wrongShape = await failure(
      unary(
        client,
        'ModelInfer',
        {
          model_name: 'tabular-classifier',
          inputs: [{ name: 'features', datatype: 'FP32', shape: [1, 5], contents: { fp32_contents: [1, 2, 3, 4, 5] } }],
        },
        withKey(USER),
      ),
    );
    assert.equal(wrongShape.code, status.INVALID_ARGUMENT, wrongShape.details);

    const miscounted = await failure(
      unary(
        client,
        'ModelInfer',
        {
          model_name: 'tabular-classifier',
          inputs: [{ name: 'features', datatype: 'FP32', shape: [2, 8], contents: { fp32_contents: ROW } }],
        },
        withKey(USER),
      ),
    );
    assert.equal(miscounted.code, status.INVALID_ARGUMENT);
    assert.match(miscounted.details, /holds 16 values, but contents.fp32_contents holds 8/);

    // Bytes that are no ModelInferRequest at all: a field 5 (inputs) that claims more bytes than follow.
    const garbage = await rawCall(
      port,
      '/inference.GRPCInferenceService/ModelInfer',
      Buffer.from([0x2a, 0x7f, 0x01, 0x02]),
      withKey(USER),
    );
    assert.ok(!(garbage instanceof Buffer), 'malformed bytes were answered as a response');
    const { code, details } = garbage as { code: number; details: string };
    assert.ok(code === status.INTERNAL || code === status.INVALID_ARGUMENT, `${code} ${details}`);

    assert.deepEqual(await unary(client, 'ServerLive', {}), { live: true });
    const again = await unary<InferResponse>(client, 'ModelInfer', tabularRequest([ROW]), withKey(USER));
    assert.equal(again.model_name, 'tabular-classifier');
  });

  it('refuses a missing or wrong key (UNAUTHENTICATED) and a user key on the repository (PERMISSION_DENIED)', async () => {
    const missing = await failure(unary(client, 'ModelInfer', tabularRequest([ROW])));
    assert.equal(missing.code, status.UNAUTHENTICATED);
    assert.match(missing.details, /API key/);
    const wrong = await failure(unary(client, 'ModelMetadata', { name: 'tabular-classifier' }, withKey('not-a-key')));
    assert.equal(wrong.code, status.UNAUTHENTICATED);
    assert.equal(wrong.metadata.get('nucleus-error-code')[0], 'invalid_api_key');
    const denied = await failure(unary(client, 'RepositoryIndex', {}, withKey(USER)));
    assert.equal(denied.code, status.PERMISSION_DENIED);
    assert.ok(events.some((x) => x.type === 'auth.refused'));
  });

  it('lists, unloads and loads models through the repository extension with the admin key', async () => {
    const index = await unary<{ models: Array<{ name: string; version: string; state: string }> }>(
      client,
      'RepositoryIndex',
      {},
      withKey(ADMIN),
    );
    assert.ok(
      index.models.some((m) => m.name === 'tabular-classifier' && m.state === 'READY'),
      JSON.stringify(index.models),
    );
    await unary(client, 'RepositoryModelUnload', { model_name: 'mlp-classifier' }, withKey(ADMIN));
    assert.deepEqual(await unary(client, 'ModelReady', { name: 'mlp-classifier' }, withKey(USER)), { ready: false });
    await unary(client, 'RepositoryModelLoad', { model_name: 'mlp-classifier' }, withKey(ADMIN));
    assert.deepEqual(await unary(client, 'ModelReady', { name: 'mlp-classifier' }, withKey(USER)), { ready: true });
    assert.ok(
      events.some(
        (x) =>
          x.type === 'admin.action' && (x.e as NucleusEvents['admin.action']).action === 'grpc.RepositoryModelLoad',
      ),
    );
  });

  it('reports each call as a request (metrics) and carries the caller trace context', async () => {
    const traceparent = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
    const before = events.length;
    await unary(
      client,
      'ModelInfer',
      tabularRequest([ROW]),
      withKey(USER, { traceparent, 'x-request-id': 'grpc-req-42' }),
    );
    const mine = events
      .slice(before)
      .map((x) => x.e as { requestId: string; path: string; traceparent?: string; status?: number });
    const start = mine.find((e) => e.requestId === 'grpc-req-42' && e.traceparent !== undefined);
    assert.equal(start?.traceparent, traceparent);
    assert.equal(start?.path, '/inference.GRPCInferenceService/ModelInfer');
    assert.ok(mine.some((e) => e.requestId === 'grpc-req-42' && e.status === 200));
    const metrics = await kit.request('/metrics', { headers: { authorization: `Bearer ${ADMIN}` } });
    assert.equal(metrics.status, 200);
    assert.match(String(metrics.body), /route="\/inference\.GRPCInferenceService\/ModelInfer"/);
  });

  it('answers DEADLINE_EXCEEDED when grpc-timeout passes, and CANCELLED work is dropped', async () => {
    // A 1 ms deadline is gone before a batch can run; the call ends DEADLINE_EXCEEDED and the server keeps serving.
    const late = await failure(
      unary(client, 'ModelInfer', tabularRequest([ROW]), withKey(USER), { deadline: Date.now() + 1 }),
    );
    assert.equal(late.code, status.DEADLINE_EXCEEDED);
    const ok = await unary<InferResponse>(client, 'ModelInfer', tabularRequest([ROW]), withKey(USER));
    assert.equal(ok.model_name, 'tabular-classifier');
  });
});

describe('gRPC ModelStreamInfer streams stories260K generation', function () {
  this.timeout(120_000);
  let kit: TestKernel | undefined;
  let client: InferenceClient;
  before(async function () {
    if (!existsSync(STORIES)) this.skip();
    let port: number;
    ({ kit, port } = await start({ models: [{ name: 'stories', path: STORIES }] }));
    client = inferenceClient(port);
  });
  after(async () => {
    client?.close();
    await kit?.stop();
  });

  const generate = (text: string, extra: Record<string, unknown> = {}) => ({
    model_name: 'stories',
    id: 'gen-1',
    inputs: [{ name: 'text_input', datatype: 'BYTES', shape: [1], contents: { bytes_contents: [Buffer.from(text)] } }],
    parameters: {
      max_tokens: { int64_param: 12 },
      temperature: { string_param: 'x' },
      ...extra,
    },
  });

  async function streamed(
    requests: unknown[],
  ): Promise<Array<{ error_message: string; infer_response: InferResponse | null }>> {
    const call = (client.ModelStreamInfer as (m: Metadata) => ClientDuplexStream<unknown, unknown>)(withKey(USER));
    const out: Array<{ error_message: string; infer_response: InferResponse | null }> = [];
    call.on('data', (m) => out.push(m as (typeof out)[number]));
    const ended = new Promise<void>((resolve, reject) => {
      call.on('end', resolve);
      call.on('error', reject);
    });
    for (const r of requests) call.write(r);
    call.end();
    await ended;
    return out;
  }

  it('streams tokens as responses with the greedy text the engine gives, then the final marker', async () => {
    const { temperature: _t, ...parameters } = generate('Once upon a time').parameters;
    const responses = await streamed([
      {
        ...generate('Once upon a time'),
        parameters: {
          ...parameters,
          temperature: { int64_param: 0 },
          triton_enable_empty_final_response: { bool_param: true },
        },
      },
    ]);
    assert.ok(responses.length >= 3, `${responses.length} responses`);
    assert.ok(
      responses.every((r) => r.error_message === ''),
      JSON.stringify(responses.map((r) => r.error_message)),
    );
    const pieces = responses.map((r) => r.infer_response!.outputs[0]?.contents?.bytes_contents[0]?.toString() ?? '');
    let engine = '';
    for await (const e of await kit!.kernel.generation.generate({
      model: 'stories',
      prompt: 'Once upon a time',
      maxTokens: 12,
      temperature: 0,
    }))
      if (e.type !== 'done') engine += e.text;
    assert.equal(pieces.join(''), engine);
    assert.ok(responses.every((r) => r.infer_response!.id === 'gen-1'));
    assert.equal(responses.at(-1)!.infer_response!.outputs.length, 0);
  });

  it('answers a bad request in the stream with error_message and serves the next', async () => {
    const responses = await streamed([
      generate('Hello'),
      { ...generate('Hello'), model_name: 'nope' },
      { ...generate('Hello'), parameters: { max_tokens: { int64_param: 3 } } },
    ]);
    const errors = responses.filter((r) => r.error_message !== '').map((r) => r.error_message);
    assert.equal(errors.length, 2, JSON.stringify(errors));
    assert.ok(errors.some((m) => /temperature must be a number/.test(m)));
    assert.ok(errors.some((m) => /nope/.test(m)));
    assert.ok(responses.some((r) => r.error_message === '' && r.infer_response!.outputs.length === 1));
  });

  it('answers ModelInfer on the LLM with the whole text, and lists it in the repository', async () => {
    const res = await unary<InferResponse>(
      client,
      'ModelInfer',
      {
        ...generate('Once upon a time'),
        parameters: { max_tokens: { int64_param: 8 }, temperature: { int64_param: 0 } },
      },
      withKey(USER),
    );
    assert.equal(res.outputs[0]!.name, 'text_output');
    assert.ok(res.outputs[0]!.contents!.bytes_contents[0]!.toString().length > 0);
    const index = await unary<{ models: Array<{ name: string }> }>(client, 'RepositoryIndex', {}, withKey(ADMIN));
    assert.ok(index.models.some((m) => m.name === 'stories'));
  });

  it('cancels the generation when the client cancels the stream', async () => {
    const requestId = 'grpc-cancel-1';
    const aborted = new Promise<NucleusEvents['generation.end']>((resolve) =>
      kit!.kernel.events.on('generation.end', (e) => e.requestId === requestId && resolve(e)),
    );
    const callEnded = new Promise<NucleusEvents['request.end']>((resolve) =>
      kit!.kernel.events.on('request.end', (e) => e.requestId === requestId && resolve(e)),
    );
    const call = (client.ModelStreamInfer as (m: Metadata) => ClientDuplexStream<unknown, unknown>)(
      withKey(USER, { 'x-request-id': requestId }),
    );
    const ended = new Promise<number>((resolve) => call.on('error', (e: { code: number }) => resolve(e.code)));
    const first = new Promise<void>((resolve) => call.once('data', () => resolve()));
    call.write({
      ...generate('Once'),
      parameters: { max_tokens: { int64_param: 200 }, ignore_eos: { bool_param: true } },
    });
    await first;
    call.cancel();
    assert.equal(await ended, status.CANCELLED);
    // The engine stopped the generation well before its 200 tokens, and the call ended on the server as cancelled.
    const generation = await aborted;
    assert.equal(generation.finishReason, 'abort');
    assert.ok(generation.completionTokens < 200, `${generation.completionTokens} tokens`);
    assert.equal((await callEnded).status, 499);
    // The engine is free again: a new stream runs to its end.
    const responses = await streamed([{ ...generate('Hi'), parameters: { max_tokens: { int64_param: 3 } } }]);
    assert.ok(responses.length >= 1 && responses.every((r) => r.error_message === ''));
  });
});

/** A loopback port nobody holds right now. */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

describe('gRPC across hot reload and deactivation', function () {
  this.timeout(120_000);
  let kit: TestKernel;
  let port: number;
  let client: InferenceClient;
  const admin = (path: string) => kit.request(path, { method: 'POST', headers: { authorization: `Bearer ${ADMIN}` } });
  before(async () => {
    ({ kit, port } = await start({ 'plugin.api-grpc.port': await freePort() }));
    client = inferenceClient(port);
  });
  after(async () => {
    client?.close();
    await kit?.stop();
  });

  it('keeps serving on the same port after a reload, and closes the port when disabled', async () => {
    assert.deepEqual(await unary(client, 'ServerLive', {}), { live: true });
    const reload = await admin('/admin/plugins/api-grpc/reload');
    assert.equal(reload.status, 200, JSON.stringify(reload.body));
    const after = await unary<InferResponse>(client, 'ModelInfer', tabularRequest([ROW]), withKey(USER));
    assert.equal(after.model_name, 'tabular-classifier');
    const disable = await admin('/admin/plugins/api-grpc/disable');
    assert.equal(disable.status, 200, JSON.stringify(disable.body));
    const gone = await failure(unary(client, 'ServerLive', {}, new Metadata(), { deadline: Date.now() + 2000 }));
    assert.ok(
      gone.code === status.UNAVAILABLE || gone.code === status.DEADLINE_EXCEEDED,
      `${gone.code} ${gone.details}`,
    );
    // Enabled again, it binds the port afresh.
    const enable = await admin('/admin/plugins/api-grpc/enable');
    assert.equal(enable.status, 200);
    assert.equal((enable.body as { state: string }).state, 'active', JSON.stringify(enable.body));
    const fresh = inferenceClient(port, undefined, { 'grpc.use_local_subchannel_pool': 1 });
    try {
      // The channel backs off after the refused connection; waitForReady retries until the port answers.
      const options = { waitForReady: true, deadline: Date.now() + 20_000 };
      assert.deepEqual(await unary(fresh, 'ServerLive', {}, new Metadata(), options), { live: true });
    } finally {
      fresh.close();
    }
  });
});
