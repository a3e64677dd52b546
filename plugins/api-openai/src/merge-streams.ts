import type { GenerationEvent, GenerationStream } from '@nucleus/sdk';

/** An event of one of several merged streams, with the position of that stream. */
export interface SourcedEvent {
  source: number;
  event: GenerationEvent;
}

/**
 * Interleaves several generations (one per prompt of a multi-prompt request) as their events come. Leaving the
 * iteration early, or a failure in one, ends all of them (each is cancelled), so no sequence is left running.
 */
export async function* mergeStreams(streams: readonly GenerationStream[]): AsyncGenerator<SourcedEvent> {
  const iterators = streams.map((s) => s[Symbol.asyncIterator]());
  const pending = new Map<number, Promise<{ source: number; result: IteratorResult<GenerationEvent> }>>();
  const pull = (source: number) =>
    pending.set(
      source,
      iterators[source]!.next().then((result) => ({ source, result })),
    );
  iterators.forEach((_, i) => pull(i));
  try {
    while (pending.size > 0) {
      const { source, result } = await Promise.race(pending.values());
      if (result.done) {
        pending.delete(source);
        continue;
      }
      pull(source);
      yield { source, event: result.value };
    }
  } finally {
    // Not awaited: a return() queues behind its stream's pending next(), which the caller's abort settles.
    for (const it of iterators) void it.return?.().catch(() => undefined);
  }
}
