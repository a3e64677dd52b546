import { strict as assert } from 'node:assert';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ExtensionPoints, type Exporter } from '@nucleus/sdk';
import { startTestKernel, type TestKernel } from '@nucleus/sdk/testing';
import { inferenceClient, unary, withKey, type InferenceClient } from './grpc-client.js';

const PLUGIN = fileURLToPath(new URL('..', import.meta.url));
const REPO = fileURLToPath(new URL('../../..', import.meta.url));
const USER = 'grpc-tracing-user-key-0123456789';
const ADMIN = 'grpc-tracing-admin-key-0123456789';
const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736';
const CALLER_SPAN = '00f067aa0ba902b7';

interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  attributes: Array<{ key: string; value: { stringValue?: string; intValue?: number | string } }>;
}

describe('gRPC calls in the tracing plugin: a span under the caller traceparent', function () {
  this.timeout(120_000);
  let kit: TestKernel;
  let client: InferenceClient;
  let collector: Server;
  const spans: OtlpSpan[] = [];

  before(async () => {
    // A loopback OTLP/HTTP JSON collector that keeps every span it is sent.
    collector = createServer((req, res) => {
      let text = '';
      req.on('data', (chunk: Buffer) => (text += chunk.toString()));
      req.on('end', () => {
        const body = JSON.parse(text) as { resourceSpans: Array<{ scopeSpans: Array<{ spans: OtlpSpan[] }> }> };
        for (const rs of body.resourceSpans) for (const ss of rs.scopeSpans) spans.push(...ss.spans);
        res.setHeader('content-type', 'application/json');
        res.end('{}');
      });
    });
    await new Promise<void>((resolve) => collector.listen(0, '127.0.0.1', resolve));
    const { port } = collector.address() as AddressInfo;
    kit = await startTestKernel({
      plugins: [PLUGIN, join(REPO, 'plugins/tracing')],
      env: { NUCLEUS_ADMIN_KEY: ADMIN },
      config: {
        'plugin.api-grpc.port': 0,
        'auth.keys': [{ key: USER, role: 'user', name: 'traced' }],
        'plugin.tracing': { endpoint: `http://127.0.0.1:${port}/v1/traces`, exportIntervalMs: 50 },
      },
    });
    const where = await kit.request('/admin/grpc', { headers: { authorization: `Bearer ${ADMIN}` } });
    client = inferenceClient((where.body as { port: number }).port);
  });
  after(async () => {
    client?.close();
    await kit?.stop();
    await new Promise((resolve) => collector?.close(resolve));
  });

  it('exports the call as a server span whose parent is the caller span, with the inference as its child', async () => {
    await unary(
      client,
      'ModelInfer',
      {
        model_name: 'tabular-classifier',
        inputs: [
          {
            name: 'features',
            datatype: 'FP32',
            shape: [1, 8],
            contents: { fp32_contents: [35, 48000, 0.3, 6, 0, 5, 1, 0.2] },
          },
        ],
      },
      withKey(USER, { traceparent: `00-${TRACE_ID}-${CALLER_SPAN}-01`, 'x-request-id': 'traced-call-1' }),
    );
    await kit.kernel.extensions.point<Exporter>(ExtensionPoints.exporter).find('otlp-traces')!.value.flush!();
    const server = spans.find((s) => s.name === 'POST /inference.GRPCInferenceService/ModelInfer');
    assert.ok(server, `the call span is exported; got ${JSON.stringify(spans.map((s) => s.name))}`);
    assert.equal(server.kind, 2, 'SERVER');
    assert.equal(server.traceId, TRACE_ID);
    assert.equal(server.parentSpanId, CALLER_SPAN);
    const id = server.attributes.find((a) => a.key === 'nucleus.request_id')?.value.stringValue;
    assert.equal(id, 'traced-call-1');
    const inference = spans.find((s) => s.name === 'inference tabular-classifier');
    assert.ok(inference, 'the engine work has a span');
    assert.equal(inference.parentSpanId, server.spanId);
    assert.equal(inference.traceId, TRACE_ID);
  });
});
