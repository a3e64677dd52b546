import type { AttributeInput } from './attribute.js';
import type { DType } from './dtype.js';
import type { Dim } from './graph-types.js';

/** A value in a graph under construction: a graph input, an initializer or a node output. */
export interface Value {
  readonly name: string;
  /** Known for inputs and initializers; node outputs leave it unset. */
  readonly dtype?: DType;
  readonly shape?: readonly Dim[];
}

/** A value, or the name of one. */
export type ValueRef = Value | string;

/** A node input: a value, or `null` for an omitted optional input. */
export type InputRef = ValueRef | null;

/** Per-node settings beyond op type, inputs and attributes. */
export interface NodeOptions {
  /** Operator domain; `''` (default) is ai.onnx. */
  domain?: string;
  /** Node name; made unique. Default: the op type. */
  name?: string;
  /** Exact output names (must be unused). Default: generated from the node name. */
  outputs?: readonly string[];
  docString?: string;
}

/**
 * What the op helpers need of a graph under construction; `GraphBuilder` is the implementation. Kept apart
 * from the builder so that the builder can own its helpers without the two importing each other.
 */
export interface NodeEmitter {
  /** The ai.onnx opset the helpers emit for. */
  readonly opset: number;
  /** Adds a node with one output and returns that output. */
  node(
    opType: string,
    inputs: readonly InputRef[],
    attrs?: Record<string, AttributeInput | undefined>,
    options?: NodeOptions,
  ): Value;
  /** A scalar constant, shared by every use of the same value and type. */
  scalar(value: number | bigint, dtype?: DType): Value;
  /** A 1-D int64 constant, as Reshape/Unsqueeze/Slice inputs want. */
  int64s(values: readonly number[], prefix?: string): Value;
  /** Records that something added needs `domain`'s opset in `[min, max)`. */
  requireOpset(domain: string, min: number, max: number | undefined, why: string): void;
}
