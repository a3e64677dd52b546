import { strict as assert } from 'node:assert';
import { rmSync } from 'node:fs';
import { ExtensionPoints, type Exporter } from '@nucleus/sdk';
import { startTestKernel, type TestKernel } from '@nucleus/sdk/testing';
import { tempDir } from '../helpers/paths.js';
import { writePlugin } from '../helpers/plugin-fixtures.js';
import { freePort, pluginDir, Receiver } from './helpers.js';

const TRACE_ID = '0af7651916cd43dd8448eb211c80319c';
const CALLER_SPAN = 'b7ad6b7169203331';

/** An OTLP/JSON attribute value. */
interface AnyValue {
  stringValue?: string;
  intValue?: number | string;
  doubleValue?: number;
  boolValue?: boolean;
  arrayValue?: { values: AnyValue[] };
}

/** A span as OTLP/JSON carries it. */
interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  startTimeUnixNano: string;
  endTimeUnixNano: string;
  attributes: Array<{ key: string; value: AnyValue }>;
  links?: Array<{ traceId: string; spanId: string }>;
  events?: Array<{ name: string }>;
  status?: { code?: number };
}

interface ExportRequest {
  resourceSpans: Array<{
    resource: { attributes: Array<{ key: string; value: AnyValue }> };
    scopeSpans: Array<{ spans: OtlpSpan[] }>;
  }>;
}

function attr(span: OtlpSpan, key: string): unknown {
  const v = span.attributes.find((a) => a.key === key)?.value;
  if (!v) return undefined;
  if (v.intValue !== undefined) return Number(v.intValue);
  return v.stringValue ?? v.doubleValue ?? v.boolValue ?? v.arrayValue?.values.map((x) => x.stringValue);
}

function durationMs(span: OtlpSpan): number {
  return Number(BigInt(span.endTimeUnixNano) - BigInt(span.startTimeUnixNano)) / 1e6;
}

describe('tracing plugin', () => {
  let collector: Receiver;
  let folder: string;
  let kit: TestKernel;
  const spans = (): OtlpSpan[] =>
    collector
      .on('/v1/traces')
      .flatMap((r) => (r.body as ExportRequest).resourceSpans.flatMap((rs) => rs.scopeSpans.flatMap((ss) => ss.spans)));
  const flush = () =>
    kit.kernel.extensions.point<Exporter>(ExtensionPoints.exporter).find('otlp-traces')!.value.flush!();

  before(async () => {
    collector = await Receiver.start();
    folder = tempDir('tracing');
    // A stand-in for an API plugin: it answers and emits the engine events a real request would cause.
    writePlugin(folder, {
      id: 'engine-like',
      activate: `
        ctx.contribute(ExtensionPoints.routes, { method: 'POST', path: '/job/:kind', access: 'public', handler: async (http) => {
          const requestId = http.state.requestId;
          const ev = ctx.events;
          ev.emit('inference.end', { model: 'resnet', version: '1', requestId, batchSize: 2, queueMs: 5, computeMs: 10, ok: true });
          ev.emit('batch.executed', { model: 'resnet', version: '1', size: 2, paddingRatio: 0, durationMs: 10, requestIds: [requestId, 'someone-else'] });
          ev.emit('generation.start', { model: 'llama', requestId, promptTokens: 7, maxTokens: 16, priority: 'high' });
          await new Promise((r) => setTimeout(r, 30));
          ev.emit('generation.tokens', { model: 'llama', requestId, tokens: 1, totalTokens: 1 });
          ev.emit('engine.steps', { model: 'llama', phase: 'decode', steps: 3, sequences: 1, tokens: 3, durationMs: 6, requestIds: [requestId] });
          ev.emit('generation.tokens', { model: 'llama', requestId, tokens: 3, totalTokens: 4 });
          ev.emit('generation.end', { model: 'llama', requestId, promptTokens: 7, completionTokens: 4, ttftMs: 20, meanItlMs: 3, durationMs: 30, queueMs: 2, finishReason: 'stop', priority: 'high' });
          if (http.params.kind === 'fail') throw new Error('engine exploded');
          return { ok: true };
        } });`,
    });
    kit = await startTestKernel({
      plugins: [pluginDir('tracing'), folder],
      config: {
        'plugin.tracing': {
          endpoint: `${collector.url}/v1/traces`,
          serviceName: 'nucleus-test',
          exportIntervalMs: 50,
          headers: { 'x-api-key': 'k' },
        },
      },
    });
  });
  after(async () => {
    await kit.stop();
    await collector.close();
    rmSync(folder, { recursive: true, force: true });
  });

  it('exports the request span under the caller’s trace, with queue, compute, generation and streaming children', async () => {
    const res = await kit.request('/job/ok', {
      body: {},
      headers: { traceparent: `00-${TRACE_ID}-${CALLER_SPAN}-01` },
    });
    assert.equal(res.status, 200);
    await flush();
    const all = spans();
    assert.ok(
      collector.received.every(
        (r) => r.headers['content-type'] === 'application/json' && r.headers['x-api-key'] === 'k',
      ),
    );
    const resource = (collector.on('/v1/traces')[0]!.body as ExportRequest).resourceSpans[0]!.resource.attributes;
    assert.equal(resource.find((a) => a.key === 'service.name')?.value.stringValue, 'nucleus-test');

    const server = all.find((s) => s.name === 'POST /job/:kind')!;
    assert.ok(server, 'the request span is named after its route template');
    assert.equal(server.kind, 2, 'SERVER');
    assert.equal(server.traceId, TRACE_ID);
    assert.equal(server.parentSpanId, CALLER_SPAN);
    assert.equal(attr(server, 'http.response.status_code'), 200);
    assert.equal(attr(server, 'http.route'), '/job/:kind');
    assert.equal(attr(server, 'nucleus.request_id'), res.headers.get('x-request-id'));
    assert.equal(res.headers.get('traceparent'), `00-${TRACE_ID}-${server.spanId}-01`);

    const childOf = (parent: OtlpSpan, name: string) => {
      const s = all.find((x) => x.name === name && x.parentSpanId === parent.spanId);
      assert.ok(s, `${name} is a child of ${parent.name}`);
      assert.equal(s.traceId, TRACE_ID);
      return s;
    };
    const inference = childOf(server, 'inference resnet');
    assert.equal(attr(inference, 'nucleus.batch_size'), 2);
    assert.ok(Math.abs(durationMs(inference) - 15) < 1);
    assert.ok(Math.abs(durationMs(childOf(inference, 'queue')) - 5) < 1);
    assert.ok(Math.abs(durationMs(childOf(inference, 'compute')) - 10) < 1);

    const generate = childOf(server, 'generate llama');
    assert.equal(attr(generate, 'gen_ai.usage.input_tokens'), 7);
    assert.equal(attr(generate, 'gen_ai.usage.output_tokens'), 4);
    assert.deepEqual(attr(generate, 'gen_ai.response.finish_reasons'), ['stop']);
    assert.deepEqual(
      generate.events?.map((e) => e.name),
      ['first_tokens', 'tokens'],
    );
    assert.ok(Math.abs(durationMs(childOf(generate, 'prefill')) - 18) < 1);
    const decode = childOf(generate, 'decode');
    assert.equal(attr(decode, 'gen_ai.usage.output_tokens'), 4);
    childOf(generate, 'queue');

    const batch = all.find((s) => s.name === 'batch resnet')!;
    assert.notEqual(batch.traceId, TRACE_ID, 'a batch is its own trace');
    assert.deepEqual(
      batch.links?.map((l) => [l.traceId, l.spanId]),
      [[TRACE_ID, server.spanId]],
      'linked to the requests it served that are known',
    );
    const steps = all.find((s) => s.name === 'engine.decode llama')!;
    assert.deepEqual(
      steps.links?.map((l) => l.spanId),
      [generate.spanId],
    );
    assert.equal(attr(steps, 'nucleus.steps'), 3);
  });

  it('marks server errors on the request span and traces requests refused before routing', async () => {
    collector.received.length = 0;
    const health = await kit.request('/health');
    assert.equal(health.headers.get('traceparent'), null, 'health checks are not traced by default');
    assert.equal((await kit.request('/job/fail', { body: {} })).status, 500);
    assert.equal(
      (await kit.request('/job/ok', { body: '{"broken', headers: { 'content-type': 'application/json' } })).status,
      400,
    );
    await flush();
    const all = spans();
    const failed = all.find((s) => s.name === 'POST /job/:kind' && attr(s, 'http.response.status_code') === 500)!;
    assert.equal(failed.status?.code, 2, 'ERROR');
    assert.equal(failed.parentSpanId ?? '', '', 'no traceparent: a new trace');
    assert.equal(
      all.some((s) => attr(s, 'url.path') === '/health'),
      false,
    );
    const refused = all.find((s) => attr(s, 'http.response.status_code') === 400)!;
    assert.ok(refused, 'a request refused by the body parser still has a span');
    assert.equal(attr(refused, 'nucleus.error_code'), 'invalid_json');
  });
});

describe('tracing plugin sampling and a collector that is away', () => {
  it('follows the caller’s sampling decision, samples new traces by ratio, and never fails a request when export fails', async () => {
    const closedPort = await freePort();
    const kit = await startTestKernel({
      plugins: [pluginDir('tracing')],
      config: {
        'plugin.tracing': {
          endpoint: `http://127.0.0.1:${closedPort}/v1/traces`,
          sampleRatio: 0,
          exportIntervalMs: 20,
          exportTimeoutMs: 300,
          ignorePaths: [],
        },
      },
    });
    try {
      const unsampled = await kit.request('/health');
      assert.equal(unsampled.status, 200);
      assert.match(
        unsampled.headers.get('traceparent') ?? '',
        /^00-[0-9a-f]{32}-[0-9a-f]{16}-00$/,
        'a trace id even when not recorded',
      );
      const sampled = await kit.request('/health', { headers: { traceparent: `00-${TRACE_ID}-${CALLER_SPAN}-01` } });
      assert.equal(sampled.status, 200);
      assert.match(sampled.headers.get('traceparent') ?? '', new RegExp(`^00-${TRACE_ID}-[0-9a-f]{16}-01$`));
      await kit.kernel.extensions.point<Exporter>(ExtensionPoints.exporter).find('otlp-traces')!.value.flush!();
      assert.equal((await kit.request('/health')).status, 200);
    } finally {
      await kit.stop();
    }
  });
});
