import type { ModelTransform, ModelTransformContext, ModelTransformResult } from '@nucleus/sdk';
import { createTensor, type OnnxModel, type OnnxNode, type OnnxTensor } from '@nucleus/sdk/onnx';
import { quantizeChannels } from './channel-quantizer.js';
import { GraphEditor, intAttr, node, numericAttributes } from './graph-editor.js';
import { NodeFilter } from './node-filter.js';
import { parseQuantizeOptions, type DynamicOptions } from './quantize-options.js';
import { describeQuantize, type QuantizeReport } from './static-int8-transform.js';

/** The op types dynamic quantization rewrites. */
export const DYNAMIC_OP_TYPES = ['MatMul', 'Gemm', 'Conv'] as const;

// ONNX TensorProto.DataType FLOAT, for Cast.
const FLOAT = 1;

/**
 * Why a node cannot run in dynamic int8 here, or undefined when it can. What ORT 1.30's CPU provider runs is pinned by
 * the test suite: MatMulInteger takes uint8 or int8 on either side with per-column zero points; ConvInteger takes
 * them too, but fails at run time on a per-channel weight zero point, so Conv weights are stored symmetric (zero point
 * 0, the default) and their per-channel scales applied after it.
 */
export function dynamicGap(n: OnnxNode, weightDims: readonly number[]): string | undefined {
  if (n.opType === 'Conv') return weightDims.length >= 3 ? undefined : `the weight has rank ${weightDims.length}`;
  if (weightDims.length !== 2) return `the weight has rank ${weightDims.length} (MatMulInteger here takes a matrix)`;
  if (n.opType === 'Gemm') {
    const a = numericAttributes(n);
    if ((a.transA ?? 0) !== 0 || (a.alpha ?? 1) !== 1 || (n.inputs[2] && (a.beta ?? 1) !== 1))
      return 'Gemm with transA, alpha ≠ 1 or beta ≠ 1';
  }
  return undefined;
}

/**
 * Dynamic int8: each MatMul (and plain Gemm) with a constant weight becomes DynamicQuantizeLinear on its activation
 * (uint8, scale and zero point computed per run) → MatMulInteger with the weight stored int8 per output column →
 * Cast → Mul by the two scales (→ Add of a Gemm's bias); each Conv likewise through ConvInteger. No calibration;
 * ORT fuses the MatMul chain into DynamicQuantizeMatMul.
 */
export function quantizeDynamic(model: OnnxModel, options: DynamicOptions): QuantizeReport {
  const g = new GraphEditor(model);
  const filter = new NodeFilter(DYNAMIC_OP_TYPES, options.include, options.exclude);
  const report: QuantizeReport = {
    method: 'dynamic',
    nodes: 0,
    weights: 0,
    floatBytes: 0,
    int8Bytes: 0,
    skipped: [],
    maxWeightError: 0,
  };
  const skip = (n: OnnxNode, reason: string): void => {
    report.skipped.push({ node: n.name, opType: n.opType, reason });
  };
  if (g.opset < 11) {
    report.skipped.push({ node: '*', opType: '*', reason: `opset ${g.opset} has no DynamicQuantizeLinear (11+)` });
    return report;
  }
  const activations = new Map<string, [string, string, string]>();
  const weights = new Map<string, { q: string; zero: string; scale: string }>();
  const replaced = new Map<string, number>();
  const nodes: OnnxNode[] = [];
  for (const n of model.graph.nodes) {
    const refused = filter.refuse(n);
    if (refused) {
      if (refused.reason) skip(n, refused.reason);
      nodes.push(n);
      continue;
    }
    const weight = g.constantFloat(n.inputs[1]);
    if (typeof weight === 'string') {
      skip(n, weight === 'the weight is not a constant' ? 'both inputs are activations' : weight);
      nodes.push(n);
      continue;
    }
    const gap = dynamicGap(n, weight.dims);
    if (gap) {
      skip(n, gap);
      nodes.push(n);
      continue;
    }
    const x = n.inputs[0]!;
    let quantized = activations.get(x);
    if (!quantized) {
      quantized = [g.fresh(`${x}.quantized`), g.fresh(`${x}.scale`), g.fresh(`${x}.zero_point`)];
      nodes.push(node('DynamicQuantizeLinear', [x], quantized, g.fresh(`${x}.DynamicQuantizeLinear`)));
      activations.set(x, quantized);
    }
    const [xq, xs, xz] = quantized;
    const base = n.name || n.outputs[0]!;
    if (n.opType === 'Conv') {
      nodes.push(...dynamicConv(g, n, weight, [xq, xs, xz], base, options.perChannel, report, replaced));
      continue;
    }
    const transB = n.opType === 'Gemm' && (numericAttributes(n).transB ?? 0) === 1;
    const key = `${weight.name}\u0000${transB}`;
    let w = weights.get(key);
    if (!w) {
      // MatMulInteger reads B as [K, N]: a transposed Gemm weight is turned round once, here.
      const [K, N] = transB ? [weight.dims[1]!, weight.dims[0]!] : [weight.dims[0]!, weight.dims[1]!];
      const data = weight.data as Float32Array;
      const kn = transB ? transpose(data, N, K) : data;
      const c = quantizeChannels(kn, [K, N], options.perChannel ? 1 : undefined);
      const dims = options.perChannel ? [N] : [];
      w = {
        q: g.fresh(`${weight.name}.int8`),
        zero: g.fresh(`${weight.name}.zero_point`),
        scale: g.fresh(`${weight.name}.scale`),
      };
      model.graph.initializers.push(createTensor(w.q, c.values, [K, N], 'int8'));
      model.graph.initializers.push(createTensor(w.zero, new Int8Array(c.scales.length), dims, 'int8'));
      model.graph.initializers.push(createTensor(w.scale, c.scales, dims));
      weights.set(key, w);
      report.weights++;
      report.floatBytes += data.byteLength;
      report.int8Bytes += c.values.byteLength + c.scales.byteLength * 2;
      report.maxWeightError = Math.max(report.maxWeightError, c.maxError);
    }
    replaced.set(weight.name, (replaced.get(weight.name) ?? 0) + 1);
    const int32 = g.fresh(`${base}.int32`);
    const float = g.fresh(`${base}.float`);
    const scale = g.fresh(`${base}.scale`);
    const bias = n.opType === 'Gemm' ? n.inputs[2] : undefined;
    const y = n.outputs[0]!;
    const scaled = bias ? g.fresh(`${base}.scaled`) : y;
    nodes.push(node('MatMulInteger', [xq, w.q, xz, w.zero], [int32], g.fresh(`${base}.MatMulInteger`)));
    nodes.push(node('Cast', [int32], [float], g.fresh(`${base}.Cast`), { to: intAttr(FLOAT) }));
    nodes.push(node('Mul', [xs, w.scale], [scale], g.fresh(`${base}.scales`)));
    nodes.push(node('Mul', [float, scale], [scaled], g.fresh(`${base}.Mul`)));
    if (bias) nodes.push(node('Add', [scaled, bias], [y], g.fresh(`${base}.bias`)));
    report.nodes++;
  }
  model.graph.nodes = nodes;
  g.dropReplaced(replaced);
  return report;
}

/**
 * Conv → ConvInteger on the uint8 activation and the int8 weight (no weight zero point: ORT's kernel takes none per
 * channel) → Cast → Mul by activation scale × weight scales shaped [1, M, 1, …] → Add of the bias, likewise shaped.
 */
function dynamicConv(
  g: GraphEditor,
  n: OnnxNode,
  weight: OnnxTensor,
  [xq, xs, xz]: [string, string, string],
  base: string,
  perChannel: boolean,
  report: QuantizeReport,
  replaced: Map<string, number>,
): OnnxNode[] {
  const M = weight.dims[0]!;
  const c = quantizeChannels(weight.data as Float32Array, weight.dims, perChannel ? 0 : undefined);
  const broadcast = [1, perChannel ? M : 1, ...weight.dims.slice(2).map(() => 1)];
  const q = g.fresh(`${weight.name}.int8`);
  const wScale = g.fresh(`${weight.name}.scale`);
  g.model.graph.initializers.push(createTensor(q, c.values, weight.dims, 'int8'));
  g.model.graph.initializers.push(createTensor(wScale, c.scales, perChannel ? broadcast : []));
  report.weights++;
  report.floatBytes += (weight.data as Float32Array).byteLength;
  report.int8Bytes += c.values.byteLength + c.scales.byteLength;
  report.maxWeightError = Math.max(report.maxWeightError, c.maxError);
  replaced.set(weight.name, (replaced.get(weight.name) ?? 0) + 1);
  report.nodes++;
  const int32 = g.fresh(`${base}.int32`);
  const float = g.fresh(`${base}.float`);
  const scale = g.fresh(`${base}.scale`);
  const bias = n.inputs[2];
  const y = n.outputs[0]!;
  const scaled = bias ? g.fresh(`${base}.scaled`) : y;
  const out = [
    { ...node('ConvInteger', [xq, q, xz], [int32], g.fresh(`${base}.ConvInteger`)), attributes: n.attributes },
    node('Cast', [int32], [float], g.fresh(`${base}.Cast`), { to: intAttr(FLOAT) }),
    node('Mul', [xs, wScale], [scale], g.fresh(`${base}.scales`)),
    node('Mul', [float, scale], [scaled], g.fresh(`${base}.Mul`)),
  ];
  if (bias) {
    const shape = g.fresh(`${base}.bias_shape`);
    g.model.graph.initializers.push(
      createTensor(shape, BigInt64Array.from([1n, BigInt(M), ...broadcast.slice(2).map(() => 1n)]), [broadcast.length]),
    );
    const shaped = g.fresh(`${base}.bias_shaped`);
    out.push(node('Reshape', [bias, shape], [shaped], g.fresh(`${base}.bias_reshape`)));
    out.push(node('Add', [scaled, shaped], [y], g.fresh(`${base}.bias`)));
  }
  return out;
}

function transpose(data: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(data.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = data[r * cols + c]!;
  return out;
}

/** The `dynamic` model transform: int8 activations quantized at run time, no calibration. */
export class DynamicInt8Transform implements ModelTransform {
  readonly name = 'dynamic';
  readonly description =
    'dynamic int8: DynamicQuantizeLinear + MatMulInteger / ConvInteger for MatMul, Gemm and Conv, int8 weights ' +
    'per channel, no calibration';
  readonly fingerprint = 'dynamic-r1';

  transform(model: OnnxModel, context: ModelTransformContext): ModelTransformResult {
    const options = parseQuantizeOptions<DynamicOptions>('dynamic', context.options);
    return { model, summary: describeQuantize(quantizeDynamic(model, options)) };
  }
}
