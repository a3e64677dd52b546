import type { ModelTransform, ModelTransformContext, ModelTransformResult } from '@nucleus/sdk';
import { createTensor, float16Bits, type OnnxModel, type OnnxNode } from '@nucleus/sdk/onnx';
import { GraphEditor, intAttr, node } from './graph-editor.js';
import { NodeFilter } from './node-filter.js';
import { parseQuantizeOptions, type Fp16Options } from './quantize-options.js';

/** Largest finite float16. */
const FLOAT16_MAX = 65504;
// ONNX TensorProto.DataType FLOAT, for Cast.
const FLOAT = 1;
/** Weights smaller than this stay float32: a Cast node costs more than their bytes save. */
const MIN_ELEMENTS = 64;

/** What an fp16 rewrite did. */
export interface Fp16Report {
  weights: number;
  floatBytes: number;
  halfBytes: number;
  skipped: { name: string; reason: string }[];
  /** Largest |w − fp16(w)|. */
  maxError: number;
}

/**
 * Float16 weights: every float32 initializer of at least 64 values read by a node the filter takes is stored float16
 * and widened by a Cast to float32 where the graph reads it, so inputs, outputs and every op stay float32. ORT folds
 * those Casts when it opens the session (on CPU and CUDA alike): the file and its download halve, the memory of the
 * running session and its speed do not change (measured in the quant bench).
 */
export function quantizeFp16(model: OnnxModel, options: Fp16Options): Fp16Report {
  const g = new GraphEditor(model);
  const report: Fp16Report = { weights: 0, floatBytes: 0, halfBytes: 0, skipped: [], maxError: 0 };
  // Any op may read a weight; the filter's include/exclude lists still apply to the reading node.
  const filter = new NodeFilter([...new Set(model.graph.nodes.map((n) => n.opType))], options.include, options.exclude);
  const eligible = new Set<string>();
  const refused = new Set<string>();
  for (const n of model.graph.nodes)
    for (const input of n.inputs) {
      if (!g.initializers.has(input)) continue;
      if (filter.refuse(n)) refused.add(input);
      else eligible.add(input);
    }
  const casts: OnnxNode[] = [];
  const renamed = new Map<string, string>();
  model.graph.initializers = model.graph.initializers.map((t) => {
    if (!eligible.has(t.name) || refused.has(t.name) || t.dtype !== 'float32' || t.external) return t;
    if (g.graphInputs.has(t.name) || g.model.graph.outputs.some((o) => o.name === t.name)) return t;
    const values = t.data as Float32Array;
    if (values.length < MIN_ELEMENTS) return t;
    let maxAbs = 0;
    for (const v of values) maxAbs = Math.max(maxAbs, Math.abs(v));
    if (maxAbs > FLOAT16_MAX) {
      report.skipped.push({ name: t.name, reason: `values up to ${maxAbs.toExponential(2)} overflow float16` });
      return t;
    }
    const bits = new Uint16Array(values.length);
    for (let i = 0; i < values.length; i++) bits[i] = float16Bits(values[i]!);
    const half = g.fresh(`${t.name}.fp16`);
    renamed.set(t.name, half);
    casts.push(node('Cast', [half], [t.name], g.fresh(`${t.name}.Cast`), { to: intAttr(FLOAT) }));
    report.weights++;
    report.floatBytes += values.byteLength;
    report.halfBytes += bits.byteLength;
    return createTensor(half, bits, t.dims, 'float16');
  });
  // The Casts produce the old names, so every reader is unchanged; they go first, as the nodes are in order.
  model.graph.nodes = [...casts, ...model.graph.nodes];
  return report;
}

/** One line for the load log. */
export function describeFp16(report: Fp16Report): string {
  if (report.weights === 0) return `fp16: no float32 weight of ${MIN_ELEMENTS}+ values; graph unchanged`;
  return (
    `fp16: ${report.weights} weights stored float16 (widened to float32 when read), ` +
    `${(report.floatBytes / 1024).toFixed(1)} KiB → ${(report.halfBytes / 1024).toFixed(1)} KiB` +
    (report.skipped.length > 0
      ? `; ${report.skipped.length} left float32 (${report.skipped.map((s) => `${s.name}: ${s.reason}`).join('; ')})`
      : '')
  );
}

/** The `fp16` model transform. */
export class Fp16WeightTransform implements ModelTransform {
  readonly name = 'fp16';
  readonly description = 'fp16 weights: float32 weights stored float16 (half the file), computed in float32';
  readonly fingerprint = 'fp16-r1';

  transform(model: OnnxModel, context: ModelTransformContext): ModelTransformResult {
    const options = parseQuantizeOptions<Fp16Options>('fp16', context.options);
    return { model, summary: describeFp16(quantizeFp16(model, options)) };
  }
}
