import { performance } from 'node:perf_hooks';
import type { EventBus, Hooks, Logger, NucleusEvents, RequestState } from '@nucleus/sdk';
import {
  defaultTextMapGetter,
  isSpanContextValid,
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  TraceFlags,
  trace,
  type Attributes,
  type Context,
  type HrTime,
  type Link,
  type Span,
  type SpanContext,
  type Tracer,
} from '@opentelemetry/api';
import { millisToHrTime, W3CTraceContextPropagator } from '@opentelemetry/core';
import { RandomIdGenerator, type Sampler, SamplingDecision } from '@opentelemetry/sdk-trace-base';

/** Open spans kept at most this many per kind, so lost end events cannot grow memory; the oldest is ended. */
const MAX_OPEN = 10_000;

interface OpenRequest {
  span?: Span;
  context?: Context;
  startedAt: number;
}

interface OpenGeneration {
  span: Span;
  context: Context;
  startedAt: number;
  groups: number;
}

/** What the tracer records besides request and model spans. */
export interface EventTracerOptions {
  /** A span per group of engine steps, linked to the generations that took part. */
  stepSpans: boolean;
  /** Request paths that get no span (health checks, scrapes). */
  ignorePaths: readonly string[];
  /**
   * Set where spans would go nowhere (no exporter): then no span is made, for requests or for events, and a request
   * only gets its ids, sampled by this sampler as its span would have been, for its `traceparent` and its log lines.
   */
  idsOnly?: Sampler;
}

/**
 * Turns kernel events into OpenTelemetry spans. The request span starts in an `onRequest` hook (which
 * reads the W3C `traceparent` and writes one back) and ends on `request.end`; engine events that carry
 * a request id become its children, timed back from their measured durations; batches and engine steps
 * are spans of their own with links to the requests they served.
 */
export class EventTracer {
  private readonly propagator = new W3CTraceContextPropagator();
  private readonly requests = new Map<string, OpenRequest>();
  private readonly generations = new Map<string, OpenGeneration>();
  private readonly ignored: ReadonlySet<string>;
  private readonly ids = new RandomIdGenerator();

  constructor(
    private readonly tracer: Tracer,
    private readonly options: EventTracerOptions,
  ) {
    this.ignored = new Set(options.ignorePaths);
  }

  /** The `onRequest` hook: continues the caller's trace, exposes the ids on `ctx.state` and the response, and adds them to the request logger. */
  hooks(): Hooks {
    return {
      // No async frame of its own: it returns the promise of what follows.
      onRequest: (ctx, next) => {
        const state = ctx.state as Partial<RequestState>;
        const requestId = state.requestId;
        if (requestId === undefined || this.ignored.has(ctx.path)) return next();
        // Most requests bring no trace context: nothing to parse then.
        const headers = ctx.headers;
        const parent =
          headers.traceparent === undefined
            ? ROOT_CONTEXT
            : this.propagator.extract(ROOT_CONTEXT, headers, defaultTextMapGetter);
        const sc = this.options.idsOnly
          ? this.idsFor(ctx.method, parent, this.options.idsOnly)
          : this.startRequest(ctx.method, ctx.path, requestId, parent);
        const sameTrace = state.traceId === sc.traceId;
        state.traceId = sc.traceId;
        state.spanId = sc.spanId;
        if (state.log)
          state.log = state.log.child(sameTrace ? { spanId: sc.spanId } : { traceId: sc.traceId, spanId: sc.spanId });
        ctx.set('traceparent', `00-${sc.traceId}-${sc.spanId}-0${sc.traceFlags & 1}`);
        return next();
      },
    };
  }

  /** The request's span, started now or when `request.start` was heard; returns its ids. */
  private startRequest(method: string, path: string, requestId: string, parent: Context): SpanContext {
    const open = this.requests.get(requestId);
    const span = this.tracer.startSpan(
      method,
      {
        kind: SpanKind.SERVER,
        startTime: hr(open?.startedAt ?? now()),
        attributes: { 'http.request.method': method, 'url.path': path, 'nucleus.request_id': requestId },
      },
      parent,
    );
    this.remember(
      this.requests,
      requestId,
      { span, context: trace.setSpan(parent, span), startedAt: open?.startedAt ?? now() },
      (r) => r.span?.end(),
    );
    return span.spanContext();
  }

  /** The ids a request span would get, as the SDK's tracer picks them: the caller's trace or a new one, and a new span id. */
  private idsFor(method: string, parent: Context, sampler: Sampler): SpanContext {
    const caller = trace.getSpanContext(parent);
    const traceId = caller && isSpanContextValid(caller) ? caller.traceId : this.ids.generateTraceId();
    const { decision } = sampler.shouldSample(parent, traceId, method, SpanKind.SERVER, {}, []);
    const sampled = decision === SamplingDecision.RECORD_AND_SAMPLED;
    return { traceId, spanId: this.ids.generateSpanId(), traceFlags: sampled ? TraceFlags.SAMPLED : TraceFlags.NONE };
  }

  /** Subscribes to the kernel events; returns the function that unsubscribes and ends every open span. */
  attach(events: EventBus, logger: Logger): () => void {
    // Without an exporter there is nobody to make spans for: no listener runs for any event.
    if (this.options.idsOnly) return () => {};
    const guard =
      <K extends keyof NucleusEvents>(fn: (e: NucleusEvents[K]) => void) =>
      (e: NucleusEvents[K]) => {
        try {
          fn(e);
        } catch (err) {
          logger.debug({ err }, 'tracing an event failed');
        }
      };
    const offs = [
      events.on(
        'request.start',
        guard<'request.start'>((e) => {
          if (this.ignored.has(e.path)) return;
          this.remember(this.requests, e.requestId, { startedAt: now() }, (r) => r.span?.end());
          // A call that passes no HTTP hook (gRPC) brings its caller's trace context with the event instead.
          if (e.traceparent !== undefined) {
            const parent = this.propagator.extract(ROOT_CONTEXT, { traceparent: e.traceparent }, defaultTextMapGetter);
            this.startRequest(e.method, e.path, e.requestId, parent);
          }
        }),
      ),
      events.on(
        'request.end',
        guard<'request.end'>((e) => this.requestEnd(e)),
      ),
      events.on(
        'inference.end',
        guard<'inference.end'>((e) => this.inferenceEnd(e)),
      ),
      events.on(
        'batch.executed',
        guard<'batch.executed'>((e) => this.batchExecuted(e)),
      ),
      events.on(
        'generation.start',
        guard<'generation.start'>((e) => this.generationStart(e)),
      ),
      events.on(
        'generation.tokens',
        guard<'generation.tokens'>((e) => this.generationTokens(e)),
      ),
      events.on(
        'generation.end',
        guard<'generation.end'>((e) => this.generationEnd(e)),
      ),
      events.on(
        'engine.steps',
        guard<'engine.steps'>((e) => this.engineSteps(e)),
      ),
    ];
    return () => {
      offs.forEach((off) => off());
      for (const g of this.generations.values()) g.span.end();
      for (const r of this.requests.values()) r.span?.end();
      this.generations.clear();
      this.requests.clear();
    };
  }

  private requestEnd(e: NucleusEvents['request.end']): void {
    if (this.ignored.has(e.path)) return;
    const open = this.requests.get(e.requestId);
    this.requests.delete(e.requestId);
    // A request refused before the hooks ran (bad JSON, too large, shutting down) still gets its span, without a caller's parent.
    const span =
      open?.span ??
      this.tracer.startSpan(e.method, {
        kind: SpanKind.SERVER,
        startTime: hr(open?.startedAt ?? now() - e.durationMs),
        attributes: { 'http.request.method': e.method, 'url.path': e.path, 'nucleus.request_id': e.requestId },
      });
    span.updateName(e.route === 'unmatched' ? e.method : `${e.method} ${e.route}`);
    span.setAttributes({
      'http.response.status_code': e.status,
      ...(e.route === 'unmatched' ? {} : { 'http.route': e.route }),
      ...(e.errorCode ? { 'nucleus.error_code': e.errorCode } : {}),
    });
    if (e.status >= 500) span.setStatus({ code: SpanStatusCode.ERROR, message: e.errorCode ?? String(e.status) });
    if (e.status >= 500) span.setAttribute('error.type', e.errorCode ?? String(e.status));
    span.end();
  }

  private inferenceEnd(e: NucleusEvents['inference.end']): void {
    const end = now();
    const start = end - e.queueMs - e.computeMs;
    const parent = this.parentOf(e.requestId);
    const attributes: Attributes = {
      'nucleus.model': e.model,
      'nucleus.model_version': e.version,
      'nucleus.batch_size': e.batchSize,
    };
    const span = this.tracer.startSpan(`inference ${e.model}`, { startTime: hr(start), attributes }, parent);
    if (!e.ok) span.setStatus({ code: SpanStatusCode.ERROR, message: e.errorCode ?? 'failed' });
    if (e.errorCode) span.setAttribute('error.type', e.errorCode);
    const inner = trace.setSpan(parent, span);
    this.child(inner, 'queue', start, start + e.queueMs, { 'nucleus.model': e.model });
    if (e.batchSize > 0)
      this.child(inner, 'compute', start + e.queueMs, end, {
        'nucleus.model': e.model,
        'nucleus.batch_size': e.batchSize,
      });
    span.end(hr(end));
  }

  private batchExecuted(e: NucleusEvents['batch.executed']): void {
    const end = now();
    const span = this.tracer.startSpan(`batch ${e.model}`, {
      kind: SpanKind.INTERNAL,
      startTime: hr(end - e.durationMs),
      root: true,
      links: this.linksTo(this.requests, e.requestIds),
      attributes: {
        'nucleus.model': e.model,
        'nucleus.model_version': e.version,
        'nucleus.batch_size': e.size,
        'nucleus.padding_ratio': e.paddingRatio,
        ...(e.worker === undefined ? {} : { 'nucleus.worker': e.worker }),
      },
    });
    span.end(hr(end));
  }

  private generationStart(e: NucleusEvents['generation.start']): void {
    const startedAt = now();
    const parent = this.parentOf(e.requestId);
    const span = this.tracer.startSpan(
      `generate ${e.model}`,
      {
        startTime: hr(startedAt),
        attributes: {
          'gen_ai.request.model': e.model,
          'gen_ai.usage.input_tokens': e.promptTokens,
          'nucleus.priority': e.priority,
          ...(e.version ? { 'nucleus.model_version': e.version } : {}),
          ...(e.maxTokens === undefined ? {} : { 'gen_ai.request.max_tokens': e.maxTokens }),
          ...(e.cachedPromptTokens === undefined ? {} : { 'nucleus.cached_prompt_tokens': e.cachedPromptTokens }),
        },
      },
      parent,
    );
    this.remember(
      this.generations,
      e.requestId,
      { span, context: trace.setSpan(parent, span), startedAt, groups: 0 },
      (g) => g.span.end(),
    );
  }

  private generationTokens(e: NucleusEvents['generation.tokens']): void {
    const g = this.generations.get(e.requestId);
    if (!g) return;
    g.groups++;
    g.span.addEvent(g.groups === 1 ? 'first_tokens' : 'tokens', {
      'nucleus.tokens': e.tokens,
      'nucleus.total_tokens': e.totalTokens,
    });
  }

  private generationEnd(e: NucleusEvents['generation.end']): void {
    const end = now();
    let g = this.generations.get(e.requestId);
    this.generations.delete(e.requestId);
    if (!g) {
      const parent = this.parentOf(e.requestId);
      const startedAt = end - e.durationMs;
      const span = this.tracer.startSpan(
        `generate ${e.model}`,
        { startTime: hr(startedAt), attributes: { 'gen_ai.request.model': e.model } },
        parent,
      );
      g = { span, context: trace.setSpan(parent, span), startedAt, groups: 0 };
    }
    const start = g.startedAt;
    const attrs = { 'gen_ai.request.model': e.model };
    const prefillFrom = start + (e.queueMs ?? 0);
    if (e.queueMs !== undefined) this.child(g.context, 'queue', start, prefillFrom, attrs);
    if (e.ttftMs !== undefined) {
      const firstToken = start + e.ttftMs;
      this.child(g.context, 'prefill', prefillFrom, firstToken, {
        ...attrs,
        'gen_ai.usage.input_tokens': e.promptTokens,
      });
      // The streaming part: from the first token to the last.
      this.child(g.context, 'decode', firstToken, end, {
        ...attrs,
        'gen_ai.usage.output_tokens': e.completionTokens,
        ...(e.meanItlMs === undefined ? {} : { 'nucleus.mean_itl_ms': e.meanItlMs }),
      });
    }
    g.span.setAttributes({
      'gen_ai.usage.input_tokens': e.promptTokens,
      'gen_ai.usage.output_tokens': e.completionTokens,
      'gen_ai.response.finish_reasons': [e.finishReason],
      ...(e.ttftMs === undefined ? {} : { 'nucleus.ttft_ms': e.ttftMs }),
    });
    if (e.finishReason === 'error') {
      g.span.setStatus({ code: SpanStatusCode.ERROR, message: e.errorCode ?? 'generation failed' });
      g.span.setAttribute('error.type', e.errorCode ?? 'error');
    }
    g.span.end(hr(end));
  }

  private engineSteps(e: NucleusEvents['engine.steps']): void {
    if (!this.options.stepSpans) return;
    const end = now();
    const span = this.tracer.startSpan(`engine.${e.phase} ${e.model}`, {
      startTime: hr(end - e.durationMs),
      root: true,
      links: this.linksTo(this.generations, e.requestIds),
      attributes: {
        'nucleus.model': e.model,
        'nucleus.steps': e.steps,
        'nucleus.sequences': e.sequences,
        'nucleus.tokens': e.tokens,
        ...(e.version ? { 'nucleus.model_version': e.version } : {}),
      },
    });
    span.end(hr(end));
  }

  private parentOf(requestId: string | undefined): Context {
    if (requestId === undefined) return ROOT_CONTEXT;
    return this.requests.get(requestId)?.context ?? ROOT_CONTEXT;
  }

  private linksTo(map: Map<string, { span?: Span }>, requestIds: readonly string[] | undefined): Link[] {
    const links: Link[] = [];
    for (const id of requestIds ?? []) {
      const span = map.get(id)?.span;
      if (span) links.push({ context: span.spanContext(), attributes: { 'nucleus.request_id': id } });
    }
    return links;
  }

  private child(parent: Context, name: string, start: number, end: number, attributes: Attributes): void {
    this.tracer.startSpan(name, { startTime: hr(start), attributes }, parent).end(hr(Math.max(start, end)));
  }

  private remember<V>(map: Map<string, V>, key: string, value: V, evict: (v: V) => void): void {
    if (!map.has(key) && map.size >= MAX_OPEN) {
      const [oldest, v] = map.entries().next().value!;
      map.delete(oldest);
      evict(v);
    }
    map.set(key, value);
  }
}

/** Now in ms since the epoch, with sub-millisecond precision. */
function now(): number {
  return performance.timeOrigin + performance.now();
}

function hr(epochMs: number): HrTime {
  return millisToHrTime(epochMs);
}
