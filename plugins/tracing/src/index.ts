import { definePlugin, ExtensionPoints } from '@nucleus/sdk';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import {
  BasicTracerProvider,
  BatchSpanProcessor,
  ParentBasedSampler,
  TraceIdRatioBasedSampler,
  type SpanProcessor,
} from '@opentelemetry/sdk-trace-base';
import { EventTracer } from './event-tracer.js';
import { LoggingExporter } from './logging-exporter.js';

export { EventTracer, type EventTracerOptions } from './event-tracer.js';

/** The tracing plugin's config section (`plugin.tracing`), as its schema in package.json defines it. */
export interface TracingConfig {
  endpoint: string | null;
  headers: Record<string, string>;
  serviceName: string;
  sampleRatio: number;
  exportIntervalMs: number;
  maxQueueSize: number;
  exportTimeoutMs: number;
  stepSpans: boolean;
  ignorePaths: string[];
}

/**
 * OpenTelemetry tracing from kernel events, exported over OTLP/HTTP (JSON). The provider is this
 * activation's own, never the global one, so a reload or a second kernel starts clean.
 */
export default definePlugin<TracingConfig>({
  activate(ctx) {
    const config = ctx.config;
    const processors: SpanProcessor[] = [];
    if (config.endpoint !== null) {
      const exporter = new OTLPTraceExporter({
        url: config.endpoint,
        headers: config.headers,
        timeoutMillis: config.exportTimeoutMs,
      });
      processors.push(
        new BatchSpanProcessor(new LoggingExporter(exporter, ctx.logger, config.endpoint), {
          scheduledDelayMillis: config.exportIntervalMs,
          maxQueueSize: config.maxQueueSize,
          maxExportBatchSize: Math.min(512, config.maxQueueSize),
          exportTimeoutMillis: config.exportTimeoutMs,
        }),
      );
    }
    const sampler = new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(config.sampleRatio) });
    const provider = new BasicTracerProvider({
      resource: resourceFromAttributes({ 'service.name': config.serviceName, 'service.version': ctx.version }),
      sampler,
      spanProcessors: processors,
    });
    const tracer = new EventTracer(provider.getTracer('nucleus', ctx.version), {
      stepSpans: config.stepSpans,
      ignorePaths: config.ignorePaths,
      // Spans with no processor are made and dropped at once: only the ids are of use then.
      ...(processors.length === 0 ? { idsOnly: sampler } : {}),
    });
    const detach = tracer.attach(ctx.events, ctx.logger);
    // Spans that could not be sent are logged by LoggingExporter; flushing and stopping never throw, and never
    // wait much longer than one export, so a collector that is away cannot hold up a shutdown.
    const settle = (work: Promise<void>) =>
      Promise.race([
        work.catch(() => {}),
        new Promise<void>((resolve) => setTimeout(resolve, config.exportTimeoutMs + 500).unref()),
      ]);
    ctx.onDispose(async () => {
      detach();
      await settle(provider.shutdown());
    });
    // First among hooks, so other hooks' log lines already carry the trace id.
    ctx.contribute(ExtensionPoints.hooks, tracer.hooks(), { name: 'traceparent', priority: 1000 });
    ctx.contribute(ExtensionPoints.exporter, { name: 'otlp-traces', flush: () => settle(provider.forceFlush()) });
    if (config.endpoint === null)
      ctx.logger.debug('no plugin.tracing.endpoint: requests get trace ids, but no spans are made or exported');
  },
});
