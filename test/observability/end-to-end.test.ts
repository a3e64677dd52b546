import { strict as assert } from 'node:assert';
import { ExtensionPoints, type Exporter, type LatencySummary } from '@nucleus/sdk';
import { startTestKernel, type TestKernel } from '@nucleus/sdk/testing';
import { Exposition, pluginDir, Receiver } from './helpers.js';

const ADMIN = 'admin-key-0123456789';
const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736';

interface Span {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  links?: Array<{ spanId: string }>;
}

describe('observability of a real inference request', () => {
  let collector: Receiver;
  let kit: TestKernel;
  before(async () => {
    collector = await Receiver.start();
    kit = await startTestKernel({
      plugins: ['api-kserve', 'metrics', 'stats', 'tracing'].map(pluginDir),
      env: { NUCLEUS_ADMIN_KEY: ADMIN },
      config: { 'plugin.tracing': { endpoint: `${collector.url}/v1/traces`, exportIntervalMs: 50 } },
    });
  });
  after(async () => {
    await kit.stop();
    await collector.close();
  });

  it('shows up in /metrics, /server/stats and the trace, from the engine’s own events', async () => {
    const headers = { authorization: `Bearer ${ADMIN}` };
    const res = await kit.request('/infer', {
      body: {
        model: 'mlp-classifier',
        inputs: {
          input: [
            [0.1, 0.2, 0.3, 0.4],
            [-1, 0, 1, 2],
          ],
        },
      },
      headers: { ...headers, traceparent: `00-${TRACE_ID}-00f067aa0ba902b7-01` },
    });
    assert.equal(res.status, 200, JSON.stringify(res.body));

    const metrics = new Exposition((await kit.request('/metrics')).body as string);
    const m = { model_name: 'mlp-classifier', model_version: '1' };
    assert.equal(metrics.value('nucleus_request_success_total', { ...m, finished_reason: 'stop' }), 1);
    assert.equal(metrics.count('nucleus_e2e_request_latency_seconds', m), 1);
    assert.ok(metrics.count('nucleus_batch_size', m) >= 1);
    assert.equal(metrics.value('nucleus_model_loaded', m), 1);
    assert.ok(
      metrics.count('nucleus_http_request_duration_seconds', { method: 'POST', route: '/infer', status: '200' }) >= 1,
    );

    const latency = (await kit.request('/server/stats/latency?model=mlp-classifier', { headers })).body as {
      latency: LatencySummary;
    };
    assert.equal(latency.latency.count, 1);

    // A flush sends what is buffered; spans a timed export already took may still be on their way: wait for them.
    const received = (): Span[] =>
      collector
        .on('/v1/traces')
        .flatMap((r) =>
          (r.body as { resourceSpans: Array<{ scopeSpans: Array<{ spans: Span[] }> }> }).resourceSpans.flatMap((rs) =>
            rs.scopeSpans.flatMap((ss) => ss.spans),
          ),
        );
    const complete = (all: Span[]) =>
      ['POST /infer', 'inference mlp-classifier', 'batch mlp-classifier'].every((name) =>
        all.some((s) => s.name === name),
      );
    let spans: Span[] = [];
    for (let attempt = 0; attempt < 40 && !complete(spans); attempt++) {
      await kit.kernel.extensions.point<Exporter>(ExtensionPoints.exporter).find('otlp-traces')!.value.flush!();
      spans = received();
      if (!complete(spans)) await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const server = spans.find((s) => s.name === 'POST /infer' && s.traceId === TRACE_ID);
    assert.ok(server, 'the request span continues the caller’s trace');
    const inference = spans.find((s) => s.name === 'inference mlp-classifier');
    assert.ok(inference, 'the engine’s inference.end became a span');
    assert.equal(inference.parentSpanId, server.spanId, 'joined to its request by the request id');
    const batch = spans.find(
      (s) => s.name === 'batch mlp-classifier' && s.links?.some((l) => l.spanId === server.spanId),
    );
    assert.ok(batch, 'the batch that carried it links to it');
  });
});
