import {
  BatchAssembler,
  DynamicBatcher,
  type BatchSettings,
  type DynamicBatcherOptions,
} from '@nucleus/core/internal/engine/index';
import type { Tensor, TensorMetadata } from '@nucleus/sdk';

/** The one input and output of the "models" below: a batch of rows of one float. */
const X: TensorMetadata = { name: 'x', dtype: 'float32', shape: [-1, 1], dimNames: ['batch', null] };

/**
 * A dynamic batcher over a "model" that runs on the main thread (`run` gets the batched `x`, gives the outputs), one
 * batch at a time, so a test sees exactly which requests went together and when. `settings` go over roomy defaults:
 * batches of up to 8, a second's delay, 100 queued. `submit(v)` sends one {@link row} holding `v`.
 */
export function mainThreadBatcher(
  label: string,
  settings: Partial<BatchSettings>,
  run: (x: Tensor) => Promise<Record<string, Tensor>>,
  onDepth?: DynamicBatcherOptions['onDepth'],
) {
  const b = new DynamicBatcher({
    label,
    settings: () => ({
      maxBatchSize: 8,
      maxQueueDelayMs: 1000,
      preferredBatchSizes: [],
      maxQueued: 100,
      queueTimeoutMs: 30_000,
      ...settings,
    }),
    assembler: new BatchAssembler([X], [X], false),
    concurrency: () => 1,
    run: async (inputs) => ({ outputs: await run(inputs.x!), runMs: 0 }),
    ...(onDepth && { onDepth }),
  });
  const submit = (v: number) => b.submit(row(v), 1);
  return { b, submit };
}

/** The inputs of one request: a row holding `v`. */
export function row(v: number): Record<string, Tensor> {
  return { x: { dtype: 'float32', shape: [1, 1], data: Float32Array.of(v) } as Tensor };
}
