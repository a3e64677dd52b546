import { NucleusError, type GenerationEvent } from '@nucleus/sdk';
import type { WireGenerationEvent } from './generation-messages.js';

/** The events of one admitted request as they arrive, consumed by one reader. */
export class EventChannel implements AsyncIterable<GenerationEvent> {
  #queue: GenerationEvent[] = [];
  #error: Error | undefined;
  #ended = false;
  #waiter: (() => void) | undefined;
  #finished = 0;
  #pushed = 0;
  #completionTokens = 0;
  #cachedTokens: number | undefined;
  #firstTokenAt: number | undefined;
  readonly #endListeners: (() => void)[] = [];

  /**
   * Cancels the request in the worker that holds it now (`readerGone`: nobody reads the channel any more). The
   * worker sets it, and sets it again when the request moves to another replica.
   */
  cancel: (readerGone: boolean) => void = () => undefined;

  /**
   * `buffered`: the reader gets the events only once the request has ended (see `GenerateRequest.buffered`), so a
   * run cut short by a dying worker can be dropped ({@link restart}) and made again unseen.
   */
  constructor(
    readonly choices: number,
    readonly promptTokens: number,
    readonly buffered = false,
  ) {}

  /** Calls `listener` once, when the request has ended and left its worker. */
  onEnd(listener: () => void): void {
    this.#endListeners.push(listener);
  }

  /** Called by the worker when the request has left it for good. */
  notifyEnd(): void {
    for (const listener of this.#endListeners.splice(0)) listener();
  }

  /** Whether the request has ended (done, failed, or given up by its reader). */
  get ended(): boolean {
    return this.#ended;
  }

  /** Whether any event has arrived: until then the request can be run again from the start elsewhere. */
  get started(): boolean {
    return this.#pushed > 0;
  }

  /** When (`performance.now()`) the first token of the current run arrived, whenever its reader reads it. */
  get firstTokenAt(): number | undefined {
    return this.#firstTokenAt;
  }

  /** Drops what a buffered request's run has produced so far, which nobody has read, to run it again from the start. */
  restart(): void {
    if (!this.buffered || this.#ended) return;
    this.#queue = [];
    this.#pushed = 0;
    this.#finished = 0;
    this.#completionTokens = 0;
    this.#cachedTokens = undefined;
    this.#firstTokenAt = undefined;
  }

  /** Adds an event from the thread; the last choice's finish adds the `done` event with usage. */
  push(event: WireGenerationEvent): void {
    if (this.#ended) return;
    this.#pushed++;
    if (event.kind === 'fail')
      return this.fail(
        new NucleusError(
          event.status,
          event.code,
          event.message,
          event.failure === undefined ? {} : { cause: { failure: event.failure } },
        ),
      );
    if (event.kind === 'token') {
      this.#firstTokenAt ??= performance.now();
      this.#queue.push({
        type: 'token',
        index: event.index,
        tokenId: event.tokenId,
        text: event.text,
        sampledAt: event.sampledAt,
        ...(event.logprobs !== undefined && { logprobs: event.logprobs }),
      });
    } else {
      this.#finished++;
      this.#completionTokens += event.completionTokens;
      if (event.cachedTokens !== undefined) this.#cachedTokens = Math.max(this.#cachedTokens ?? 0, event.cachedTokens);
      this.#queue.push({
        type: 'finish',
        index: event.index,
        finishReason: event.reason,
        text: event.text,
        completionTokens: event.completionTokens,
        ...(event.stop !== undefined && { stopSequence: event.stop }),
      });
      if (this.#finished === this.choices) {
        const usage = {
          promptTokens: this.promptTokens,
          completionTokens: this.#completionTokens,
          totalTokens: this.promptTokens + this.#completionTokens,
          ...(this.#cachedTokens !== undefined && { cachedPromptTokens: this.#cachedTokens }),
        };
        this.#queue.push({ type: 'done', usage });
        this.#ended = true;
      }
    }
    if (!this.buffered || this.#ended) this.#wake();
  }

  /** Ends the request with an error; the reader gets it after the events already queued. */
  fail(err: Error): void {
    if (this.#ended) return;
    this.#error = err;
    this.#ended = true;
    this.#wake();
  }

  [Symbol.asyncIterator](): AsyncIterator<GenerationEvent> {
    return {
      next: async () => {
        for (;;) {
          // A buffered request's events are read once it has ended: until then they may still be dropped.
          const event = this.buffered && !this.#ended ? undefined : this.#queue.shift();
          if (event) return { value: event, done: false };
          if (this.#error) throw this.#error;
          if (this.#ended) return { value: undefined, done: true };
          await new Promise<void>((resolve) => (this.#waiter = resolve));
        }
      },
      return: async () => {
        // The reader left early (a client that went away): the thread must drop the sequences.
        if (!this.#ended) {
          this.#ended = true;
          this.cancel(true);
        }
        this.#queue = [];
        return { value: undefined, done: true };
      },
    };
  }

  #wake(): void {
    const w = this.#waiter;
    this.#waiter = undefined;
    w?.();
  }
}
