import assert from 'node:assert/strict';
import { EventTracer, type EventTracerOptions } from '@nucleus/plugin-tracing';
import type { EventBus, Hooks } from '@nucleus/sdk';
import { SpanStatusCode } from '@opentelemetry/api';
import { hrTimeToMilliseconds } from '@opentelemetry/core';
import {
  AlwaysOffSampler,
  AlwaysOnSampler,
  BasicTracerProvider,
  InMemorySpanExporter,
  ParentBasedSampler,
  type ReadableSpan,
  SimpleSpanProcessor,
} from '@opentelemetry/sdk-trace-base';
import { eventBus } from '@nucleus/sdk/testing';
import { recordingLogger } from '@nucleus/sdk/testing';

interface Rig {
  bus: EventBus;
  hooks: Hooks;
  spans(): ReadableSpan[];
  named(name: string): ReadableSpan;
  detach(): void;
}

function rig(options: Partial<EventTracerOptions> = {}): Rig {
  const exporter = new InMemorySpanExporter();
  const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
  const tracer = new EventTracer(provider.getTracer('test'), { stepSpans: false, ignorePaths: [], ...options });
  const bus = eventBus();
  const detach = tracer.attach(bus, recordingLogger());
  const spans = () => exporter.getFinishedSpans();
  return {
    bus,
    hooks: tracer.hooks(),
    spans,
    named: (name) => {
      const found = spans().filter((s) => s.name === name);
      assert.equal(found.length, 1, `one span named ${name}; spans: ${spans().map((s) => s.name)}`);
      return found[0]!;
    },
    detach,
  };
}

const durationMs = (s: ReadableSpan) => hrTimeToMilliseconds(s.duration);
const parentOf = (s: ReadableSpan) => s.parentSpanContext?.spanId;

/** Runs the onRequest hook as the server does for one request, with the headers a client sent. */
async function throughHook(hooks: Hooks, requestId: string, path: string, headers: Record<string, string> = {}) {
  const sent: Record<string, string> = {};
  const state: Record<string, unknown> = { requestId };
  const ctx = { state, path, method: 'POST', headers, set: (k: string, v: string) => void (sent[k] = v) };
  let ranNext = false;
  await hooks.onRequest!(ctx as never, async () => {
    ranNext = true;
  });
  return { sent, state, ranNext };
}

describe('tracing: spans from kernel events', () => {
  it('continues the caller’s W3C trace and answers with its own traceparent', async () => {
    const r = rig();
    const traceId = '0af7651916cd43dd8448eb211c80319c';
    const parentSpan = 'b7ad6b7169203331';
    r.bus.emit('request.start', { requestId: 'q1', method: 'POST', path: '/v1/models/m/infer' });
    const { sent, state, ranNext } = await throughHook(r.hooks, 'q1', '/v1/models/m/infer', {
      traceparent: `00-${traceId}-${parentSpan}-01`,
    });
    assert.ok(ranNext);
    assert.equal(state.traceId, traceId);
    assert.equal(sent.traceparent, `00-${traceId}-${state.spanId}-01`);
    r.bus.emit('request.end', {
      requestId: 'q1',
      method: 'POST',
      path: '/v1/models/m/infer',
      route: '/v1/models/:name/infer',
      status: 200,
      durationMs: 3,
    });
    const span = r.named('POST /v1/models/:name/infer');
    assert.equal(span.spanContext().traceId, traceId);
    assert.equal(parentOf(span), parentSpan);
    assert.equal(span.attributes['http.response.status_code'], 200);
    assert.equal(span.attributes['http.route'], '/v1/models/:name/infer');
    assert.equal(span.attributes['nucleus.request_id'], 'q1');
  });

  it('makes an inference span a child of its request, with queue and compute children timed from the event', async () => {
    const r = rig();
    r.bus.emit('request.start', { requestId: 'q2', method: 'POST', path: '/infer' });
    const { state } = await throughHook(r.hooks, 'q2', '/infer');
    r.bus.emit('inference.end', {
      model: 'mlp',
      version: '1',
      requestId: 'q2',
      batchSize: 4,
      queueMs: 20,
      computeMs: 30,
      ok: false,
      errorCode: 'worker_crashed',
    });
    const inference = r.named('inference mlp');
    assert.equal(parentOf(inference), state.spanId);
    assert.equal(inference.spanContext().traceId, state.traceId);
    assert.ok(Math.abs(durationMs(inference) - 50) < 0.01, `inference span lasts ${durationMs(inference)} ms`);
    assert.deepEqual(inference.status, { code: SpanStatusCode.ERROR, message: 'worker_crashed' });
    const queue = r.named('queue');
    const compute = r.named('compute');
    assert.equal(parentOf(queue), inference.spanContext().spanId);
    assert.equal(parentOf(compute), inference.spanContext().spanId);
    assert.ok(Math.abs(durationMs(queue) - 20) < 0.01);
    assert.ok(Math.abs(durationMs(compute) - 30) < 0.01);
    assert.equal(compute.attributes['nucleus.batch_size'], 4);
  });

  it('a request refused before the hooks ran still gets a span; a 5xx marks it an error', () => {
    const r = rig();
    r.bus.emit('request.end', {
      requestId: 'q3',
      method: 'PUT',
      path: '/nowhere',
      route: 'unmatched',
      status: 503,
      durationMs: 12,
      errorCode: 'shutting_down',
    });
    const span = r.named('PUT');
    assert.equal(span.attributes['http.route'], undefined);
    assert.equal(span.attributes['error.type'], 'shutting_down');
    assert.equal(span.status.code, SpanStatusCode.ERROR);
    assert.equal(parentOf(span), undefined);
  });

  it('ignored paths get no span and no traceparent', async () => {
    const r = rig({ ignorePaths: ['/health'] });
    r.bus.emit('request.start', { requestId: 'h', method: 'GET', path: '/health' });
    const { sent, state, ranNext } = await throughHook(r.hooks, 'h', '/health');
    r.bus.emit('request.end', {
      requestId: 'h',
      method: 'GET',
      path: '/health',
      route: '/health',
      status: 200,
      durationMs: 1,
    });
    assert.ok(ranNext);
    assert.deepEqual(sent, {});
    assert.equal(state.traceId, undefined);
    assert.deepEqual(r.spans(), []);
  });

  it('a generation span carries token usage and token events, with queue, prefill and decode children', () => {
    const r = rig();
    r.bus.emit('generation.start', { model: 'llm', requestId: 'g1', promptTokens: 7, maxTokens: 16, priority: 'high' });
    r.bus.emit('generation.tokens', { model: 'llm', requestId: 'g1', tokens: 1, totalTokens: 1 });
    r.bus.emit('generation.tokens', { model: 'llm', requestId: 'g1', tokens: 3, totalTokens: 4 });
    r.bus.emit('generation.end', {
      model: 'llm',
      requestId: 'g1',
      promptTokens: 7,
      completionTokens: 4,
      ttftMs: 0,
      queueMs: 0,
      durationMs: 5,
      finishReason: 'length',
      priority: 'high',
    });
    const gen = r.named('generate llm');
    assert.equal(gen.attributes['gen_ai.usage.input_tokens'], 7);
    assert.equal(gen.attributes['gen_ai.usage.output_tokens'], 4);
    assert.equal(gen.attributes['gen_ai.request.max_tokens'], 16);
    assert.deepEqual(gen.attributes['gen_ai.response.finish_reasons'], ['length']);
    assert.deepEqual(
      gen.events.map((e) => [e.name, e.attributes?.['nucleus.total_tokens']]),
      [
        ['first_tokens', 1],
        ['tokens', 4],
      ],
    );
    for (const name of ['queue', 'prefill', 'decode']) assert.equal(parentOf(r.named(name)), gen.spanContext().spanId);
    assert.equal(gen.status.code, SpanStatusCode.UNSET);
  });

  it('a generation that ends without a start event is traced from its duration, and a failure is an error', () => {
    const r = rig();
    r.bus.emit('generation.end', {
      model: 'llm',
      requestId: 'g2',
      promptTokens: 2,
      completionTokens: 0,
      durationMs: 40,
      finishReason: 'error',
      priority: 'normal',
      errorCode: 'oom',
    });
    const gen = r.named('generate llm');
    assert.ok(Math.abs(durationMs(gen) - 40) < 0.01);
    assert.deepEqual(gen.status, { code: SpanStatusCode.ERROR, message: 'oom' });
    // No ttft: no prefill or decode children to place.
    assert.deepEqual(
      r.spans().map((s) => s.name),
      ['generate llm'],
    );
  });

  it('batches and engine steps are root spans linked to the requests they served; steps only when asked', () => {
    const r = rig({ stepSpans: true });
    r.bus.emit('generation.start', { model: 'llm', requestId: 'a', promptTokens: 1, priority: 'normal' });
    r.bus.emit('generation.start', { model: 'llm', requestId: 'b', promptTokens: 1, priority: 'normal' });
    r.bus.emit('engine.steps', {
      model: 'llm',
      phase: 'decode',
      steps: 8,
      sequences: 2,
      tokens: 16,
      durationMs: 4,
      requestIds: ['a', 'b', 'unknown'],
    });
    const steps = r.named('engine.decode llm');
    assert.equal(parentOf(steps), undefined);
    assert.equal(steps.links.length, 2);
    assert.deepEqual(
      steps.links.map((l) => l.attributes?.['nucleus.request_id']),
      ['a', 'b'],
    );
    r.bus.emit('batch.executed', { model: 'mlp', version: '1', size: 3, paddingRatio: 0.25, durationMs: 2, worker: 1 });
    assert.equal(r.named('batch mlp').attributes['nucleus.worker'], 1);
    const quiet = rig();
    quiet.bus.emit('engine.steps', {
      model: 'llm',
      phase: 'prefill',
      steps: 1,
      sequences: 1,
      tokens: 4,
      durationMs: 1,
    });
    assert.deepEqual(quiet.spans(), []);
  });

  it('detaching ends the spans still open and stops listening', () => {
    const r = rig();
    r.bus.emit('generation.start', { model: 'llm', requestId: 'open', promptTokens: 1, priority: 'low' });
    assert.deepEqual(r.spans(), []);
    r.detach();
    assert.deepEqual(
      r.spans().map((s) => s.name),
      ['generate llm'],
    );
    r.bus.emit('batch.executed', { model: 'mlp', version: '1', size: 1, paddingRatio: 0, durationMs: 1 });
    assert.equal(r.spans().length, 1);
  });

  it('with no exporter, makes no span and hears no event, yet gives each request its ids, sampled as a span would be', async () => {
    const idsOnly = new ParentBasedSampler({ root: new AlwaysOnSampler() });
    const r = rig({ idsOnly });
    const caller = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
    r.bus.emit('request.start', { requestId: 'r1', method: 'POST', path: '/v2/models/mlp/infer' });
    const continued = await throughHook(r.hooks, 'r1', '/v2/models/mlp/infer', { traceparent: caller });
    assert.ok(continued.ranNext);
    const [, traceId, spanId, flags] = continued.sent.traceparent!.split('-');
    assert.equal(traceId, '0af7651916cd43dd8448eb211c80319c', 'the caller’s trace goes on');
    assert.match(spanId!, /^[0-9a-f]{16}$/);
    assert.notEqual(spanId, 'b7ad6b7169203331');
    assert.equal(flags, '01');
    assert.deepEqual([continued.state.traceId, continued.state.spanId], [traceId, spanId]);
    r.bus.emit('inference.end', {
      model: 'mlp',
      version: '1',
      requestId: 'r1',
      ok: true,
      queueMs: 1,
      computeMs: 1,
      batchSize: 1,
    });
    r.bus.emit('request.end', {
      requestId: 'r1',
      method: 'POST',
      path: '/v2/models/mlp/infer',
      route: '/v2/models/:name/infer',
      status: 200,
      durationMs: 3,
    });
    assert.deepEqual(r.spans(), [], 'no span made');

    const unsampledCaller = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00';
    const off = await throughHook(r.hooks, 'r2', '/x', { traceparent: unsampledCaller });
    assert.match(
      off.sent.traceparent!,
      /^00-0af7651916cd43dd8448eb211c80319c-[0-9a-f]{16}-00$/,
      'the caller’s decision',
    );
    const fresh = await throughHook(r.hooks, 'r3', '/x');
    assert.match(fresh.sent.traceparent!, /^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/, 'a new trace, sampled by the root');
    assert.notEqual(fresh.sent.traceparent!.split('-')[1], '0af7651916cd43dd8448eb211c80319c');
    const never = rig({ idsOnly: new ParentBasedSampler({ root: new AlwaysOffSampler() }) });
    assert.match((await throughHook(never.hooks, 'r4', '/x')).sent.traceparent!, /-00$/);
  });
});
