import * as ort from 'onnxruntime-node';
import { GraphBuilder } from '@nucleus/sdk/onnx';
import { isResidentKvRunner, type CachedPrefix, type ResidentKvRunner } from './contrib-session.js';
import type { DecoderRunner, StepResult } from './decoder-session.js';
import type { KvArray, KvBatch, KvLayout } from './kv-batch.js';
import type { LogitsRow } from './sampler.js';

/**
 * Fault injection, a test hook only (`GenerationEngineOptions.faultInjection`; nothing in config sets it): makes a
 * decoder's runs fail the way onnxruntime does, so that the engine's recovery from failed steps can be tested on a
 * real model. Never set it when serving.
 */
export interface GenerationFaultInjection {
  /**
   * A simulated memory limit: a step whose present KV tensors (rows × positions after the step, the longest row's for
   * every row, for either graph style), plus the bytes the prefix cache holds, need more than this fails the way a run that cannot get memory fails: onnxruntime is made
   * to fail a real allocation, and its error is the step's.
   */
  memoryLimitBytes?: number;
  /** Every run fails with this message. */
  failRuns?: string;
}

let oversized: Promise<ort.InferenceSession> | undefined;

/**
 * Runs a one-node graph (`ConstantOfShape`) asking for a 256 TiB tensor, more than a 64-bit process can address
 * (so not even an overcommitting kernel hands it out), so that onnxruntime's allocator really fails; resolves to the
 * error onnxruntime throws for it.
 */
export async function realAllocationFailure(): Promise<Error> {
  oversized ??= (() => {
    const g = new GraphBuilder('oversized');
    const shape = g.input('shape', 'int64', [1]);
    g.output(g.node('ConstantOfShape', [shape]), 'float32', ['n']);
    return ort.InferenceSession.create(g.toModel({ producer: 'nucleus-fault-injection' }).encode(), {
      logSeverityLevel: 4,
    });
  })();
  const session = await oversized;
  try {
    await session.run({ shape: new ort.Tensor('int64', BigInt64Array.from([2n ** 46n]), [1]) });
  } catch (err) {
    return err instanceof Error ? err : new Error(String(err));
  }
  throw new Error('onnxruntime allocated a 256 TiB tensor; the simulated memory limit cannot fail this run');
}

/** Releases the session {@link realAllocationFailure} opened, if any (before a thread that used it ends). */
export async function releaseAllocationFailureSession(): Promise<void> {
  const session = oversized;
  oversized = undefined;
  await (await session)?.release();
}

/** `runner`, failing runs as `faults` says (a {@link ResidentKvRunner} stays one). */
export function withFaultInjection(
  runner: DecoderRunner | ResidentKvRunner,
  faults: GenerationFaultInjection,
  heldBytes: () => number,
): DecoderRunner | ResidentKvRunner {
  return isResidentKvRunner(runner)
    ? new FaultInjectingResidentRunner(runner, faults, heldBytes)
    : new FaultInjectingRunner(runner, faults, heldBytes);
}

/** Fails a step as {@link GenerationFaultInjection} says: a run over `rows` rows of `positions` positions each. */
class FaultCheck {
  readonly #perToken: number;

  constructor(
    layout: KvLayout,
    private readonly faults: GenerationFaultInjection,
    /** Bytes held besides the step (the prefix cache). */
    private readonly heldBytes: () => number,
  ) {
    this.#perToken = layout.numLayers * 2 * layout.numKvHeads * layout.headDim * (layout.dtype === 'float16' ? 2 : 4);
  }

  async check(rows: number, positions: number): Promise<void> {
    if (this.faults.failRuns !== undefined) throw new Error(this.faults.failRuns);
    const limit = this.faults.memoryLimitBytes;
    if (limit === undefined) return;
    if (rows * positions * this.#perToken + this.heldBytes() > limit) throw await realAllocationFailure();
  }
}

/** A {@link DecoderRunner} that fails runs as {@link GenerationFaultInjection} says and otherwise runs the real one. */
export class FaultInjectingRunner implements DecoderRunner {
  readonly #faults: FaultCheck;

  constructor(
    private readonly inner: DecoderRunner,
    faults: GenerationFaultInjection,
    /** Bytes held besides the step (the prefix cache). */
    heldBytes: () => number,
  ) {
    this.#faults = new FaultCheck(inner.layout, faults, heldBytes);
  }

  get layout(): KvLayout {
    return this.inner.layout;
  }

  async prefill(prompts: readonly (readonly number[])[], past?: KvBatch): Promise<StepResult> {
    await this.#faults.check(prompts.length, (past?.pastLength ?? 0) + Math.max(...prompts.map((p) => p.length)));
    return this.inner.prefill(prompts, past);
  }

  async decode(kv: KvBatch, tokens: readonly number[]): Promise<StepResult> {
    await this.#faults.check(kv.rows, kv.pastLength + 1);
    return this.inner.decode(kv, tokens);
  }
}

/**
 * A {@link ResidentKvRunner} that fails steps as {@link GenerationFaultInjection} says and otherwise runs the real
 * one; a failed step leaves the real runner's rows as they were, as a failed ORT run does.
 */
export class FaultInjectingResidentRunner implements ResidentKvRunner {
  readonly resident = true;
  readonly #faults: FaultCheck;

  constructor(
    private readonly inner: ResidentKvRunner,
    faults: GenerationFaultInjection,
    /** Bytes held besides the step (the prefix cache). */
    heldBytes: () => number,
  ) {
    this.#faults = new FaultCheck(inner.layout, faults, heldBytes);
  }

  get layout(): KvLayout {
    return this.inner.layout;
  }

  get lengths(): readonly number[] {
    return this.inner.lengths;
  }

  async admit(
    prompts: readonly (readonly number[])[],
    prefixes: readonly (CachedPrefix | undefined)[] = [],
  ): Promise<LogitsRow[]> {
    const positions = prompts.map(
      (p, i) => p.length + (prefixes[i] ? prefixes[i].blocks.length * prefixes[i].blockTokens : 0),
    );
    await this.#faults.check(prompts.length, Math.max(...positions));
    return this.inner.admit(prompts, prefixes);
  }

  async decode(tokens: readonly number[], first?: number): Promise<LogitsRow[]> {
    const start = first ?? 0;
    await this.#faults.check(tokens.length, Math.max(0, ...this.inner.lengths.slice(start, start + tokens.length)) + 1);
    return this.inner.decode(tokens, first);
  }

  keepRows(rows: readonly number[]): void {
    this.inner.keepRows(rows);
  }

  blockAt(row: number, first: number, blockTokens: number): KvArray {
    return this.inner.blockAt(row, first, blockTokens);
  }
}
