import { attr } from './attribute.js';
import { dtypeToCode, type DType } from './dtype.js';
import type { InputRef, NodeEmitter, NodeOptions, Value, ValueRef } from './node-emitter.js';

/** An operand of an elementwise helper: a value, or a plain number meaning a float32 scalar constant. */
export type Operand = ValueRef | number;

/** Convolution and pooling window settings (ONNX names, camelCased). */
export interface WindowOptions {
  kernelShape?: readonly number[];
  strides?: readonly number[];
  /** `[x1_begin, x2_begin, …, x1_end, x2_end, …]`. */
  pads?: readonly number[];
  dilations?: readonly number[];
  autoPad?: 'NOTSET' | 'SAME_UPPER' | 'SAME_LOWER' | 'VALID';
}

/**
 * One method per common operator, emitting the form that fits the builder's opset (e.g. Unsqueeze's axes
 * as an input from opset 13, as an attribute before). Each returns the node's output.
 */
export class OpHelpers {
  constructor(private readonly g: NodeEmitter) {}

  private operand(v: Operand): ValueRef {
    return typeof v === 'number' ? this.g.scalar(v, 'float32') : v;
  }

  private binary(op: string, a: Operand, b: Operand, options?: NodeOptions): Value {
    return this.g.node(op, [this.operand(a), this.operand(b)], {}, options);
  }

  private unary(op: string, x: ValueRef, options?: NodeOptions): Value {
    return this.g.node(op, [x], {}, options);
  }

  /** Elementwise a + b (broadcasting). */
  add(a: Operand, b: Operand, options?: NodeOptions): Value {
    return this.binary('Add', a, b, options);
  }

  /** Elementwise a − b. */
  sub(a: Operand, b: Operand, options?: NodeOptions): Value {
    return this.binary('Sub', a, b, options);
  }

  /** Elementwise a × b. */
  mul(a: Operand, b: Operand, options?: NodeOptions): Value {
    return this.binary('Mul', a, b, options);
  }

  /** Elementwise a ÷ b. */
  div(a: Operand, b: Operand, options?: NodeOptions): Value {
    return this.binary('Div', a, b, options);
  }

  /** Elementwise a ^ b. */
  pow(a: Operand, b: Operand, options?: NodeOptions): Value {
    return this.binary('Pow', a, b, options);
  }

  /** Elementwise a == b (bool). */
  equal(a: ValueRef, b: ValueRef, options?: NodeOptions): Value {
    return this.binary('Equal', a, b, options);
  }

  /** Elementwise a < b (bool). */
  less(a: ValueRef, b: ValueRef, options?: NodeOptions): Value {
    return this.binary('Less', a, b, options);
  }

  /** Elementwise a > b (bool). */
  greater(a: ValueRef, b: ValueRef, options?: NodeOptions): Value {
    return this.binary('Greater', a, b, options);
  }

  /** Matrix product with numpy broadcasting of batch dims. */
  matMul(a: ValueRef, b: ValueRef, options?: NodeOptions): Value {
    return this.g.node('MatMul', [a, b], {}, options);
  }

  /** alpha·A'·B' + beta·C, A and B 2-D. */
  gemm(
    a: ValueRef,
    b: ValueRef,
    c?: ValueRef,
    o: { alpha?: number; beta?: number; transA?: boolean; transB?: boolean } = {},
    options?: NodeOptions,
  ): Value {
    return this.g.node(
      'Gemm',
      c === undefined ? [a, b] : [a, b, c],
      {
        alpha: o.alpha === undefined ? undefined : attr.float(o.alpha),
        beta: o.beta === undefined ? undefined : attr.float(o.beta),
        transA: o.transA ? 1 : undefined,
        transB: o.transB ? 1 : undefined,
      },
      options,
    );
  }

  /** max(x, 0). */
  relu(x: ValueRef, options?: NodeOptions): Value {
    return this.unary('Relu', x, options);
  }

  /** 1 / (1 + e^−x). */
  sigmoid(x: ValueRef, options?: NodeOptions): Value {
    return this.unary('Sigmoid', x, options);
  }

  /** Hyperbolic tangent. */
  tanh(x: ValueRef, options?: NodeOptions): Value {
    return this.unary('Tanh', x, options);
  }

  /** e^x. */
  exp(x: ValueRef, options?: NodeOptions): Value {
    return this.unary('Exp', x, options);
  }

  /** Square root. */
  sqrt(x: ValueRef, options?: NodeOptions): Value {
    return this.unary('Sqrt', x, options);
  }

  /** Gauss error function. */
  erf(x: ValueRef, options?: NodeOptions): Value {
    return this.unary('Erf', x, options);
  }

  /** −x. */
  neg(x: ValueRef, options?: NodeOptions): Value {
    return this.unary('Neg', x, options);
  }

  /** A copy of x under a new name. */
  identity(x: ValueRef, options?: NodeOptions): Value {
    return this.unary('Identity', x, options);
  }

  /** Exact (erf) GELU: the Gelu op from opset 20, `0.5·x·(1 + erf(x/√2))` in plain ops before it. */
  gelu(x: ValueRef, options?: NodeOptions): Value {
    if (this.g.opset >= 20) {
      this.g.requireOpset('', 20, undefined, 'Gelu');
      return this.unary('Gelu', x, options);
    }
    const inner = this.erf(this.mul(x, Math.SQRT1_2));
    return this.mul(this.mul(x, 0.5), this.add(inner, 1), options);
  }

  /** Softmax along `axis` (default −1; other axes need opset 13's per-axis meaning). */
  softmax(x: ValueRef, axis = -1, options?: NodeOptions): Value {
    if (axis !== -1) this.g.requireOpset('', 13, undefined, `Softmax over axis ${axis}`);
    return this.g.node('Softmax', [x], { axis }, options);
  }

  /** Index of the largest element along `axis` (int64). */
  argMax(x: ValueRef, o: { axis?: number; keepdims?: boolean } = {}, options?: NodeOptions): Value {
    return this.g.node('ArgMax', [x], { axis: o.axis ?? 0, keepdims: o.keepdims === false ? 0 : 1 }, options);
  }

  /** N-D convolution; `b` is the optional per-output-channel bias. */
  conv(
    x: ValueRef,
    w: ValueRef,
    b?: ValueRef,
    o: WindowOptions & { group?: number } = {},
    options?: NodeOptions,
  ): Value {
    return this.g.node('Conv', b === undefined ? [x, w] : [x, w, b], { ...windowAttrs(o), group: o.group }, options);
  }

  /** Max pooling. */
  maxPool(x: ValueRef, o: WindowOptions & { kernelShape: readonly number[] }, options?: NodeOptions): Value {
    return this.g.node('MaxPool', [x], windowAttrs(o), options);
  }

  /** Average pooling (padding excluded from the count unless `countIncludePad`). */
  averagePool(
    x: ValueRef,
    o: WindowOptions & { kernelShape: readonly number[]; countIncludePad?: boolean },
    options?: NodeOptions,
  ): Value {
    return this.g.node(
      'AveragePool',
      [x],
      { ...windowAttrs(o), count_include_pad: o.countIncludePad ? 1 : undefined },
      options,
    );
  }

  /** Mean over all spatial dims, keeping them as size 1. */
  globalAveragePool(x: ValueRef, options?: NodeOptions): Value {
    return this.unary('GlobalAveragePool', x, options);
  }

  /** Reshapes to 2-D: dims before `axis` form rows, the rest columns. */
  flatten(x: ValueRef, axis = 1, options?: NodeOptions): Value {
    return this.g.node('Flatten', [x], { axis }, options);
  }

  /** Reshape; in a literal shape 0 copies the input dim and −1 is inferred. */
  reshape(x: ValueRef, shape: readonly number[] | ValueRef, options?: NodeOptions): Value {
    const s = isNumberList(shape) ? this.g.int64s(shape, 'shape') : shape;
    return this.g.node('Reshape', [x, s], {}, options);
  }

  /** Permutes dims. */
  transpose(x: ValueRef, perm: readonly number[], options?: NodeOptions): Value {
    return this.g.node('Transpose', [x], { perm: attr.ints(perm) }, options);
  }

  /** Inserts size-1 dims at `axes`. */
  unsqueeze(x: ValueRef, axes: readonly number[], options?: NodeOptions): Value {
    if (this.g.opset >= 13) {
      this.g.requireOpset('', 13, undefined, 'Unsqueeze with axes as an input');
      return this.g.node('Unsqueeze', [x, this.g.int64s(axes, 'axes')], {}, options);
    }
    this.g.requireOpset('', 1, 13, 'Unsqueeze with axes as an attribute');
    return this.g.node('Unsqueeze', [x], { axes: attr.ints(axes) }, options);
  }

  /** Removes size-1 dims at `axes`. */
  squeeze(x: ValueRef, axes: readonly number[], options?: NodeOptions): Value {
    if (this.g.opset >= 13) {
      this.g.requireOpset('', 13, undefined, 'Squeeze with axes as an input');
      return this.g.node('Squeeze', [x, this.g.int64s(axes, 'axes')], {}, options);
    }
    this.g.requireOpset('', 1, 13, 'Squeeze with axes as an attribute');
    return this.g.node('Squeeze', [x], { axes: attr.ints(axes) }, options);
  }

  /** Joins values along `axis`. */
  concat(inputs: readonly ValueRef[], axis: number, options?: NodeOptions): Value {
    return this.g.node('Concat', inputs, { axis }, options);
  }

  /** Picks slices of `data` along `axis` by `indices` (an embedding lookup with axis 0). */
  gather(data: ValueRef, indices: ValueRef, axis = 0, options?: NodeOptions): Value {
    return this.g.node('Gather', [data, indices], { axis }, options);
  }

  /** Converts element type. */
  cast(x: ValueRef, to: DType, options?: NodeOptions): Value {
    return this.g.node('Cast', [x], { to: dtypeToCode(to) }, options);
  }

  /** Picks x where cond is true, else y. */
  where(cond: ValueRef, x: Operand, y: Operand, options?: NodeOptions): Value {
    return this.g.node('Where', [cond, this.operand(x), this.operand(y)], {}, options);
  }

  /** The shape of x as a 1-D int64 tensor, optionally only dims [start, end) (opset 15). */
  shape(x: ValueRef, o: { start?: number; end?: number } = {}, options?: NodeOptions): Value {
    if (o.start !== undefined || o.end !== undefined) this.g.requireOpset('', 15, undefined, 'Shape with start/end');
    return this.g.node('Shape', [x], { start: o.start, end: o.end }, options);
  }

  /** 1-D sequence start, start+delta, … below limit (scalars of one dtype). */
  range(start: ValueRef, limit: ValueRef, delta: ValueRef, options?: NodeOptions): Value {
    this.g.requireOpset('', 11, undefined, 'Range');
    return this.g.node('Range', [start, limit, delta], {}, options);
  }

  /** Layer normalization over dims from `axis` on (opset 17). */
  layerNormalization(
    x: ValueRef,
    scale: ValueRef,
    bias?: ValueRef,
    o: { axis?: number; epsilon?: number } = {},
    options?: NodeOptions,
  ): Value {
    this.g.requireOpset('', 17, undefined, 'LayerNormalization');
    const inputs: InputRef[] = bias === undefined ? [x, scale] : [x, scale, bias];
    return this.g.node(
      'LayerNormalization',
      inputs,
      { axis: o.axis ?? -1, epsilon: attr.float(o.epsilon ?? 1e-5) },
      options,
    );
  }

  /** Mean over `axes` (axes as an attribute before opset 18, as an input from 18). */
  reduceMean(x: ValueRef, axes: readonly number[], keepdims = true, options?: NodeOptions): Value {
    return this.reduce('ReduceMean', 18, x, axes, keepdims, options);
  }

  /** Sum over `axes` (axes as an input from opset 13). */
  reduceSum(x: ValueRef, axes: readonly number[], keepdims = true, options?: NodeOptions): Value {
    return this.reduce('ReduceSum', 13, x, axes, keepdims, options);
  }

  /** Max over `axes` (axes as an input from opset 18). */
  reduceMax(x: ValueRef, axes: readonly number[], keepdims = true, options?: NodeOptions): Value {
    return this.reduce('ReduceMax', 18, x, axes, keepdims, options);
  }

  private reduce(
    op: string,
    inputFrom: number,
    x: ValueRef,
    axes: readonly number[],
    keepdims: boolean,
    options?: NodeOptions,
  ): Value {
    const kd = keepdims ? 1 : 0;
    if (this.g.opset >= inputFrom) {
      this.g.requireOpset('', inputFrom, undefined, `${op} with axes as an input`);
      return this.g.node(op, [x, this.g.int64s(axes, 'axes')], { keepdims: kd }, options);
    }
    this.g.requireOpset('', 1, inputFrom, `${op} with axes as an attribute`);
    return this.g.node(op, [x], { axes: attr.ints(axes), keepdims: kd }, options);
  }
}

function isNumberList(v: unknown): v is readonly number[] {
  return Array.isArray(v);
}

function windowAttrs(o: WindowOptions): Record<string, ReturnType<typeof attr.ints> | string | undefined> {
  return {
    kernel_shape: o.kernelShape ? attr.ints(o.kernelShape) : undefined,
    strides: o.strides ? attr.ints(o.strides) : undefined,
    pads: o.pads ? attr.ints(o.pads) : undefined,
    dilations: o.dilations ? attr.ints(o.dilations) : undefined,
    auto_pad: o.autoPad,
  };
}
