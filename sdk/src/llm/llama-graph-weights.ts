import type { GraphBuilder, Value } from '../onnx/index.js';
import type { BlockQuantizedMatrix, WeightMatrix } from './block-quantized.js';
import { quantizedGather, quantizedLinear } from './block-quantized-ops.js';

/** One of the matrices a fused projection stacks (q, k, v; gate, up). */
export interface FusedPart {
  m: WeightMatrix;
  outDim: number;
  bias?: Float32Array;
}

/** `[rows, cols]` row-major → `[cols, rows]`, because MatMul wants `x · Wᵀ` with Wᵀ stored `[in, out]`. */
export function transposeMatrix(w: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(w.length);
  for (let r = 0; r < rows; r++) {
    const base = r * cols;
    for (let c = 0; c < cols; c++) out[c * rows + r] = w[base + c]!;
  }
  return out;
}

/** How the Llama graph turns weight matrices into nodes. */
export interface WeightNodeOptions {
  /** `MatMulNBits` accuracy level for block-quantized matrices: 0 computes in float32, 4 quantizes activations to int8. */
  accuracyLevel?: 0 | 1 | 4;
}

/**
 * Emits a Llama graph's weights: float32 matrices as MatMul/Gather over float initializers, block-quantized ones
 * through ONNX Runtime's block-quantized operators, so the graph holds the weights as the file stored them.
 */
export class WeightNodes {
  constructor(
    private readonly g: GraphBuilder,
    private readonly options: WeightNodeOptions = {},
  ) {}

  /** `x · Wᵀ (+ bias)` for `W` `[outDim, inDim]`. */
  linear(
    x: Value,
    name: string,
    m: WeightMatrix,
    outDim: number,
    inDim: number,
    bias?: Float32Array,
    outputs?: string[],
  ): Value {
    const o = this.g.ops;
    let product: Value;
    if (m instanceof Float32Array) {
      product = o.matMul(
        x,
        this.g.initializer(`${name}.weight`, transposeMatrix(m, outDim, inDim), [inDim, outDim]),
        bias || !outputs ? {} : { outputs },
      );
    } else {
      product = quantizedLinear(this.g, x, name, m, this.accuracyLevel);
      if (!bias && outputs) return o.identity(product, { outputs });
    }
    if (!bias) return product;
    return o.add(product, this.g.initializer(`${name}.bias`, bias, [outDim]), outputs ? { outputs } : {});
  }

  /**
   * `x · [W₁; W₂; …]ᵀ`: one matmul over the parts' rows stacked, when they are stored alike (all float32, or all
   * quantized the same way), else one matmul each and a Concat. Output `[…, Σ outDim]`.
   */
  fusedLinear(x: Value, name: string, inDim: number, parts: FusedPart[]): Value {
    const outDim = parts.reduce((n, p) => n + p.outDim, 0);
    const bias = parts.some((p) => p.bias) ? stackBiases(parts) : undefined;
    const stacked = stackRows(parts.map((p) => p.m));
    if (stacked) return this.linear(x, name, stacked, outDim, inDim, bias);
    return this.g.ops.concat(
      parts.map((p, i) => this.linear(x, `${name}.${i}`, p.m, p.outDim, inDim, p.bias)),
      -1,
    );
  }

  /**
   * The classifier tied to the embedding `m` (`[vocab, hidden]`): logits = x · mᵀ. A block-quantized embedding is
   * stored once and read by both the lookup and this matmul; a float one is copied transposed for MatMul.
   */
  tiedLinear(x: Value, m: WeightMatrix, vocab: number, hidden: number, outputs?: string[]): Value {
    return this.linear(x, 'lm_head', m, vocab, hidden, undefined, outputs);
  }

  /** Rows of the `[vocab, hidden]` embedding for `ids`. */
  embed(ids: Value, name: string, m: WeightMatrix, vocab: number, hidden: number): Value {
    if (!(m instanceof Float32Array)) {
      return quantizedGather(this.g, ids, name, m, this.accuracyLevel);
    }
    return this.g.ops.gather(this.g.initializer(`${name}.weight`, m, [vocab, hidden]), ids, 0);
  }

  /** The accuracy level block-quantized matmuls use. */
  get accuracyLevel(): 0 | 1 | 4 {
    return this.options.accuracyLevel ?? 0;
  }
}

function stackBiases(parts: FusedPart[]): Float32Array {
  const out = new Float32Array(parts.reduce((n, p) => n + p.outDim, 0));
  let at = 0;
  for (const p of parts) {
    if (p.bias) out.set(p.bias, at);
    at += p.outDim;
  }
  return out;
}

// Rows stacked into one matrix, or undefined when the parts are stored differently.
function stackRows(parts: WeightMatrix[]): WeightMatrix | undefined {
  if (parts.every((m) => m instanceof Float32Array)) {
    const out = new Float32Array(parts.reduce((n, m) => n + m.length, 0));
    let at = 0;
    for (const m of parts) {
      out.set(m, at);
      at += m.length;
    }
    return out;
  }
  const quantized = parts.filter((m): m is BlockQuantizedMatrix => !(m instanceof Float32Array));
  const first = quantized[0]!;
  const alike = (m: BlockQuantizedMatrix): boolean =>
    m.bits === first.bits &&
    m.blockSize === first.blockSize &&
    m.cols === first.cols &&
    (m.offsets === undefined) === (first.offsets === undefined);
  if (quantized.length !== parts.length || !quantized.every(alike)) return undefined;
  const concat = <T extends Uint8Array | Float32Array>(arrays: T[], make: (n: number) => T): T => {
    const out = make(arrays.reduce((n, a) => n + a.length, 0));
    let at = 0;
    for (const a of arrays) {
      out.set(a, at);
      at += a.length;
    }
    return out;
  };
  return {
    kind: 'block-quantized',
    rows: quantized.reduce((n, m) => n + m.rows, 0),
    cols: first.cols,
    bits: first.bits,
    blockSize: first.blockSize,
    data: concat(
      quantized.map((m) => m.data),
      (n) => new Uint8Array(n),
    ),
    scales: concat(
      quantized.map((m) => m.scales),
      (n) => new Float32Array(n),
    ),
    zeroPoints: concat(
      quantized.map((m) => m.zeroPoints),
      (n) => new Uint8Array(n),
    ),
    ...(first.offsets && {
      offsets: concat(
        quantized.map((m) => m.offsets!),
        (n) => new Float32Array(n),
      ),
    }),
    // Kept only where every part has them alike; the offsets alone stay exact.
    ...(quantized.every((m) => m.minima?.blocksPerScale === first.minima?.blocksPerScale) &&
      first.minima && {
        minima: {
          blocksPerScale: first.minima.blocksPerScale,
          scales: concat(
            quantized.map((m) => m.minima!.scales),
            (n) => new Float32Array(n),
          ),
          steps: concat(
            quantized.map((m) => m.minima!.steps),
            (n) => new Uint8Array(n),
          ),
        },
      }),
    sourceType: [...new Set(quantized.map((m) => m.sourceType))].join('+'),
  };
}
