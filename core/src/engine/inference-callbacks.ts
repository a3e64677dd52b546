import { EventEmitter } from 'node:events';
import {
  toNucleusError,
  type InferenceService,
  type InferRequest,
  type InferResult,
  type NucleusError,
} from '@nucleus/sdk';

/** A Node-style callback for one inference: an error (always a NucleusError) or the result. */
export type InferCallback = (err: NucleusError | null, result?: InferResult) => void;

/**
 * Runs `request` and calls `callback` once with `(null, result)` or `(error)`, for code written in callback
 * style. The callback runs outside the engine's promise chain, so a callback that throws is not taken for a
 * failed inference.
 */
export function inferCallback(
  service: Pick<InferenceService, 'infer'>,
  request: InferRequest,
  callback: InferCallback,
): void {
  service.infer(request).then(
    (result) => queueMicrotask(() => callback(null, result)),
    (err: unknown) => queueMicrotask(() => callback(toNucleusError(err))),
  );
}

/** What {@link InferenceEmitter} emits for each submitted request. */
export interface InferenceEmitterEvents<T> {
  result: [tag: T, result: InferResult];
  failed: [tag: T, error: NucleusError];
}

/**
 * Event style: `submit` requests with a tag of your choosing and listen for `result` and `failed`. Requests run
 * concurrently (so the engine batches them); events come in the order they finish. `idle` fires when nothing
 * submitted is still running.
 */
export class InferenceEmitter<T = string> extends EventEmitter<InferenceEmitterEvents<T> & { idle: [] }> {
  #pending = 0;

  constructor(private readonly service: Pick<InferenceService, 'infer'>) {
    super();
  }

  /** Requests still running. */
  get pending(): number {
    return this.#pending;
  }

  /** Starts one request; its outcome arrives as a `result` or `failed` event carrying `tag`. */
  submit(tag: T, request: InferRequest): void {
    this.#pending++;
    inferCallback(this.service, request, (err, result) => {
      this.#pending--;
      if (err) this.emit('failed', tag, err);
      else this.emit('result', tag, result!);
      if (this.#pending === 0) this.emit('idle');
    });
  }
}
