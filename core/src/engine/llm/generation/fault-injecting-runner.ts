import { ortAllocationFailureMessage } from './allocation-failure.js';
import type { DecoderRunner, StepResult } from './decoder-session.js';
import type { KvBatch, KvLayout } from './kv-batch.js';

/**
 * Fault injection, a test hook only (`GenerationEngineOptions.faultInjection`; nothing in config sets it): makes a
 * decoder's runs fail the way onnxruntime does, so that the engine's recovery from failed steps can be tested on a
 * real model. Never set it when serving.
 */
export interface GenerationFaultInjection {
  /**
   * A simulated memory limit: a run whose present KV tensors (rows × positions after the step), plus the bytes the
   * prefix cache holds, need more than this fails with ORT's own allocation error message, before it runs.
   */
  memoryLimitBytes?: number;
  /** Every run fails with this message. */
  failRuns?: string;
}

/** A {@link DecoderRunner} that fails runs as {@link GenerationFaultInjection} says and otherwise runs the real one. */
export class FaultInjectingRunner implements DecoderRunner {
  readonly #perToken: number;

  constructor(
    private readonly inner: DecoderRunner,
    private readonly faults: GenerationFaultInjection,
    /** Bytes held besides the step (the prefix cache). */
    private readonly heldBytes: () => number,
  ) {
    const l: KvLayout = inner.layout;
    this.#perToken = l.numLayers * 2 * l.numKvHeads * l.headDim * (l.dtype === 'float16' ? 2 : 4);
  }

  get layout(): KvLayout {
    return this.inner.layout;
  }

  prefill(prompts: readonly (readonly number[])[], past?: KvBatch): Promise<StepResult> {
    this.#check(prompts.length, (past?.pastLength ?? 0) + Math.max(...prompts.map((p) => p.length)));
    return this.inner.prefill(prompts, past);
  }

  decode(kv: KvBatch, tokens: readonly number[]): Promise<StepResult> {
    this.#check(kv.rows, kv.pastLength + 1);
    return this.inner.decode(kv, tokens);
  }

  #check(rows: number, positions: number): void {
    if (this.faults.failRuns !== undefined) throw new Error(this.faults.failRuns);
    const limit = this.faults.memoryLimitBytes;
    if (limit === undefined) return;
    const bytes = rows * positions * this.#perToken;
    if (bytes + this.heldBytes() > limit) throw new Error(ortAllocationFailureMessage('MatMul', bytes));
  }
}
