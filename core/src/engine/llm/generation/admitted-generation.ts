import { performance } from 'node:perf_hooks';
import { toNucleusError, type GenerationEvent, type GenerationStream, type NucleusError } from '@nucleus/sdk';
import type { EventChannel } from './event-channel.js';
import { nowS } from './served-model.js';

// The key the thread gives the failures of one step, so the requests it ended count once against the breaker.
export function failureKeyOf(err: unknown): string | undefined {
  const cause = (err as { cause?: { failure?: unknown } } | undefined)?.cause;
  return typeof cause?.failure === 'string' ? cause.failure : undefined;
}

/** How an admitted generation ended, for telemetry and its breaker. */
export interface GenerationSummary {
  completionTokens: number;
  firstTokenAt?: number;
  endedAt: number;
  finishReason: 'stop' | 'length' | 'abort' | 'error';
  errorCode?: string;
  /** What the generation failed with. */
  error?: NucleusError;
}

/** An admitted generation: its events, with telemetry taken on the way through. */
export class AdmittedGeneration implements GenerationStream {
  readonly created = nowS();

  constructor(
    readonly id: string,
    readonly model: string,
    readonly version: string,
    readonly promptTokens: number,
    readonly maxTokens: number,
    private readonly channel: EventChannel,
    private readonly onEnd: (summary: GenerationSummary) => void,
  ) {}

  async *[Symbol.asyncIterator](): AsyncIterator<GenerationEvent> {
    let firstTokenAt: number | undefined;
    let completionTokens = 0;
    let reason: GenerationSummary['finishReason'] = 'abort';
    let errorCode: string | undefined;
    let error: NucleusError | undefined;
    try {
      for await (const event of this.channel) {
        // A buffered request's events come at its end: its first token is when the channel received it.
        if (event.type === 'token' && firstTokenAt === undefined)
          firstTokenAt = this.channel.firstTokenAt ?? performance.now();
        if (event.type === 'finish')
          reason = event.finishReason === 'cancelled' ? 'abort' : event.finishReason === 'length' ? 'length' : 'stop';
        if (event.type === 'done') completionTokens = event.usage.completionTokens;
        yield event;
      }
    } catch (err) {
      reason = 'error';
      error = toNucleusError(err);
      errorCode = error.code;
      // A 503 from the thread (out of memory, a worker that died) is worth retrying: say when.
      if (error.status === 503) error.headers['retry-after'] ??= '1';
      throw error;
    } finally {
      this.onEnd({
        completionTokens,
        ...(firstTokenAt !== undefined && { firstTokenAt }),
        endedAt: performance.now(),
        finishReason: reason,
        ...(errorCode !== undefined && { errorCode }),
        ...(error !== undefined && { error }),
      });
    }
  }
}
