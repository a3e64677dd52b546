import type { Logger } from '@nucleus/sdk';
import { ExportResultCode, type ExportResult } from '@opentelemetry/core';
import type { ReadableSpan, SpanExporter } from '@opentelemetry/sdk-trace-base';

/** Least time between two warnings about failed exports. */
const WARN_EVERY_MS = 60_000;

/** Wraps a span exporter so failed exports are logged (at most once a minute, with a count) instead of vanishing. */
export class LoggingExporter implements SpanExporter {
  private lastWarn = 0;
  private failedSinceWarn = 0;

  constructor(
    private readonly inner: SpanExporter,
    private readonly logger: Logger,
    private readonly endpoint: string,
  ) {}

  export(spans: ReadableSpan[], resultCallback: (result: ExportResult) => void): void {
    this.inner.export(spans, (result) => {
      if (result.code !== ExportResultCode.SUCCESS) this.failed(spans.length, result.error);
      resultCallback(result);
    });
  }

  shutdown(): Promise<void> {
    return this.inner.shutdown();
  }

  forceFlush(): Promise<void> {
    return this.inner.forceFlush?.() ?? Promise.resolve();
  }

  private failed(count: number, error: Error | undefined): void {
    this.failedSinceWarn += count;
    const at = Date.now();
    if (at - this.lastWarn < WARN_EVERY_MS) return;
    this.logger.warn(
      { endpoint: this.endpoint, spans: this.failedSinceWarn, err: error },
      'exporting spans failed; they were dropped',
    );
    this.lastWarn = at;
    this.failedSinceWarn = 0;
  }
}
