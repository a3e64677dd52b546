import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { ModelTransform, ModelTransformContext, ModelTransformResult } from '@nucleus/sdk';
import { createTensor, type OnnxModel, type OnnxNode, type OnnxTensor } from '@nucleus/sdk/onnx';
import { calibrateRanges } from './calibrate.js';
import { readSamples } from './calibration-data.js';
import type { TensorRange } from './calibrator.js';
import { activationParams } from './channel-quantizer.js';
import { GraphEditor, node, numericAttributes } from './graph-editor.js';
import { dequantizedWeight } from './int8-weight.js';
import { NodeFilter } from './node-filter.js';
import { parseQuantizeOptions, type StaticOptions } from './quantize-options.js';

/** The op types static quantization puts QuantizeLinear/DequantizeLinear around. */
export const STATIC_OP_TYPES = ['MatMul', 'Gemm', 'Conv'] as const;

/** A node static quantization will rewrite: its activation input and its constant weight. */
export interface QdqTarget {
  node: OnnxNode;
  activation: string;
  weight: OnnxTensor;
  /** The weight's output-channel axis; undefined: one scale for the tensor. */
  axis?: number;
}

/** What a static rewrite did. */
export interface QuantizeReport {
  method: string;
  /** Nodes now reading quantized inputs. */
  nodes: number;
  /** Distinct weights stored int8, their float and int8 bytes. */
  weights: number;
  floatBytes: number;
  int8Bytes: number;
  /** Nodes the method handles that stay float, with why (logged at load). */
  skipped: { node: string; opType: string; reason: string }[];
  /** Activation ranges picked by the calibrator, by tensor. */
  ranges?: Record<string, TensorRange>;
  maxWeightError: number;
}

/** The nodes to rewrite and the ones left float with why. */
export function planQdq(
  model: OnnxModel,
  filter: NodeFilter,
  perChannel: boolean,
): { targets: QdqTarget[]; skipped: QuantizeReport['skipped'] } {
  const g = new GraphEditor(model);
  const targets: QdqTarget[] = [];
  const skipped: QuantizeReport['skipped'] = [];
  const skip = (n: OnnxNode, reason: string): void => {
    skipped.push({ node: n.name, opType: n.opType, reason });
  };
  const inputTypes = new Map(
    model.graph.inputs.map((i) => [i.name, i.type?.kind === 'tensor' ? i.type.dtype : undefined]),
  );
  if (g.opset < 10)
    return { targets, skipped: [{ node: '*', opType: '*', reason: `opset ${g.opset} has no QuantizeLinear (10+)` }] };
  for (const n of model.graph.nodes) {
    const refused = filter.refuse(n);
    if (refused) {
      if (refused.reason) skip(n, refused.reason);
      continue;
    }
    const activation = n.inputs[0] ?? '';
    if (g.initializers.has(activation)) {
      skip(n, 'its first input is a constant');
      continue;
    }
    const inputType = inputTypes.get(activation);
    if (inputType !== undefined && inputType !== 'float32') {
      skip(n, `its input is ${inputType}`);
      continue;
    }
    const weight = g.constantFloat(n.inputs[1]);
    if (typeof weight === 'string') {
      // A product of two activations (attention scores) has no weight to calibrate per channel.
      skip(n, weight === 'the weight is not a constant' ? 'both inputs are activations' : weight);
      continue;
    }
    let axis: number | undefined;
    const a = numericAttributes(n);
    if (n.opType === 'Conv') axis = weight.dims.length >= 3 ? 0 : undefined;
    else if (n.opType === 'Gemm') axis = (a.transB ?? 0) === 1 ? 0 : 1;
    else axis = weight.dims.length === 2 ? 1 : undefined;
    // Per-channel DequantizeLinear (an `axis`) came with opset 13.
    if (!perChannel || g.opset < 13) axis = undefined;
    targets.push({ node: n, activation, weight, ...(axis !== undefined && { axis }) });
  }
  return { targets, skipped };
}

/**
 * Static int8 in QDQ form: each target's activation passes through QuantizeLinear → DequantizeLinear with the scale
 * and zero point its calibrated range gives, and its weight is stored int8 (symmetric, per output channel) behind a
 * DequantizeLinear. The graph stays standard ONNX; ORT's CPU provider fuses the pairs into its integer kernels
 * (QLinearConv, MatMulIntegerToFloat, QGemm) where it has them and runs the float op on the dequantized values where
 * it does not.
 */
export function insertQdq(
  model: OnnxModel,
  targets: QdqTarget[],
  ranges: Map<string, TensorRange>,
  activationType: 'uint8' | 'int8',
): Omit<QuantizeReport, 'method' | 'skipped'> {
  const g = new GraphEditor(model);
  const report = { nodes: 0, weights: 0, floatBytes: 0, int8Bytes: 0, maxWeightError: 0 };
  const dequantized = new Map<string, string>();
  const weights = new Map<string, string>();
  const replaced = new Map<string, number>();
  const inserted = new Map<OnnxNode, OnnxNode[]>();
  const byNode = new Map(targets.map((t) => [t.node, t]));
  for (const t of targets) {
    const before: OnnxNode[] = [];
    let x = dequantized.get(t.activation);
    if (x === undefined) {
      const range = ranges.get(t.activation);
      if (!range) throw new Error(`no calibrated range for ${t.activation}`);
      const { scale, zeroPoint } = activationParams(range, activationType);
      const s = g.fresh(`${t.activation}.scale`);
      const z = g.fresh(`${t.activation}.zero_point`);
      model.graph.initializers.push(createTensor(s, new Float32Array([scale]), []));
      model.graph.initializers.push(
        createTensor(z, activationType === 'uint8' ? new Uint8Array([zeroPoint]) : new Int8Array([zeroPoint]), []),
      );
      const q = g.fresh(`${t.activation}.quantized`);
      x = g.fresh(`${t.activation}.dequantized`);
      before.push(node('QuantizeLinear', [t.activation, s, z], [q], g.fresh(`${t.activation}.QuantizeLinear`)));
      before.push(node('DequantizeLinear', [q, s, z], [x], g.fresh(`${t.activation}.DequantizeLinear`)));
      dequantized.set(t.activation, x);
    }
    if (!weights.has(t.weight.name)) {
      const w = dequantizedWeight(g, t, report, true);
      before.push(w.node);
      weights.set(t.weight.name, w.output);
    }
    replaced.set(t.weight.name, (replaced.get(t.weight.name) ?? 0) + 1);
    inserted.set(t.node, before);
    report.nodes++;
  }
  g.replaceNodes((n) => {
    const t = byNode.get(n);
    if (!t) return undefined;
    const inputs = [...n.inputs];
    inputs[0] = dequantized.get(t.activation)!;
    inputs[1] = weights.get(t.weight.name)!;
    return [...inserted.get(n)!, { ...n, inputs }];
  }, replaced);
  return report;
}

/** One line for the load log: what changed, and which nodes stayed float and why. */
export function describeQuantize(report: QuantizeReport): string {
  return describeReport(
    report,
    `${report.method}: ${report.nodes} nodes int8 over ${report.weights} weights`,
    `${report.method}: no node quantized; graph unchanged`,
  );
}

/**
 * One line for the load log: `changed` and the weights' size before and after (or `unchanged` when no node was), then
 * the first nodes that stayed float, with why.
 */
export function describeReport(report: QuantizeReport, changed: string, unchanged: string): string {
  const ratio = report.int8Bytes > 0 ? report.floatBytes / report.int8Bytes : 0;
  const head =
    report.nodes === 0
      ? unchanged
      : `${changed}, ${(report.floatBytes / 1024).toFixed(1)} KiB → ${(report.int8Bytes / 1024).toFixed(1)} KiB ` +
        `(${ratio.toFixed(2)}× smaller)`;
  if (report.skipped.length === 0) return head;
  const shown = report.skipped.slice(0, 6).map((s) => `${s.node} (${s.opType}): ${s.reason}`);
  const more = report.skipped.length > shown.length ? `; ${report.skipped.length - shown.length} more` : '';
  return `${head}; ${report.skipped.length} left float: ${shown.join('; ')}${more}`;
}

/** Every file a calibration path names (itself, or the files of a folder), for the cache key. */
function calibrationFiles(path: string): string[] {
  return statSync(path).isDirectory()
    ? readdirSync(path)
        .sort()
        .map((f) => join(path, f))
        .filter((f) => statSync(f).isFile())
    : [path];
}

/**
 * The `static` model transform: calibrates activation ranges on the model's own sample set
 * (`{ method: static, calibration: samples.jsonl }`) and writes a QDQ graph.
 */
export class StaticInt8Transform implements ModelTransform {
  readonly name = 'static';
  readonly description =
    'static int8 (QDQ): activations calibrated on sample inputs (min-max, percentile, entropy), int8 weights per ' +
    'channel, around MatMul, Gemm and Conv';
  readonly fingerprint = 'static-r1';

  optionsFingerprint(options: Readonly<Record<string, unknown>>): string {
    const parsed = parseQuantizeOptions<StaticOptions>('static', options);
    const hash = createHash('sha256').update(JSON.stringify(parsed));
    try {
      for (const file of calibrationFiles(parsed.calibration)) hash.update(file).update(readFileSync(file));
    } catch {
      // An unreadable path fails the transform itself, with a clearer message.
    }
    return hash.digest('hex');
  }

  async transform(model: OnnxModel, context: ModelTransformContext): Promise<ModelTransformResult> {
    const options = parseQuantizeOptions<StaticOptions>('static', context.options, 'static (needs `calibration`)');
    const report = await quantizeStatic(model, options, context.progress);
    return { model, summary: describeQuantize(report) };
  }
}

/** Static int8 over `model` in place: plan, calibrate in a worker thread, insert the QDQ pairs. */
export async function quantizeStatic(
  model: OnnxModel,
  options: StaticOptions,
  progress?: ModelTransformContext['progress'],
): Promise<QuantizeReport> {
  const filter = new NodeFilter(STATIC_OP_TYPES, options.include, options.exclude);
  const { targets, skipped } = planQdq(model, filter, options.perChannel);
  const report: QuantizeReport = {
    method: 'static',
    nodes: 0,
    weights: 0,
    floatBytes: 0,
    int8Bytes: 0,
    skipped,
    maxWeightError: 0,
  };
  if (targets.length === 0) return report;
  const samples = readSamples(options.calibration, model, options.maxSamples);
  const tensors = [...new Set(targets.map((t) => t.activation))];
  const ranges = await calibrateRanges(model, tensors, samples, options.calibrator, options.percentile, progress);
  Object.assign(report, insertQdq(model, targets, ranges, options.activationType));
  report.ranges = Object.fromEntries(ranges);
  return report;
}
