import { createTensor, type OnnxNode, type OnnxTensor } from '@nucleus/sdk/onnx';
import { quantizeChannels } from './channel-quantizer.js';
import { type GraphEditor, intAttr, node } from './graph-editor.js';

/** The totals of a report that stored weights add to. */
export interface WeightTotals {
  weights: number;
  floatBytes: number;
  int8Bytes: number;
  maxWeightError: number;
}

/**
 * Stores a target's weight int8 (symmetric, one float32 scale per output channel, or one for the tensor) as new
 * initializers and gives the DequantizeLinear that reads it back as float, adding its sizes to `report`. With
 * `zeroPoint`, an explicit int8 zero-point tensor of zeros goes with it (the QDQ pair form ORT's fusions look for);
 * without, DequantizeLinear's default zero point (0) says the same in fewer bytes.
 */
export function dequantizedWeight(
  g: GraphEditor,
  t: { weight: OnnxTensor; axis?: number },
  report: WeightTotals,
  zeroPoint: boolean,
): { output: string; node: OnnxNode } {
  const initializers = g.model.graph.initializers;
  const c = quantizeChannels(t.weight.data as Float32Array, t.weight.dims, t.axis);
  const paramDims = t.axis === undefined ? [] : [c.scales.length];
  const inputs = [g.fresh(`${t.weight.name}.int8`), g.fresh(`${t.weight.name}.scale`)];
  initializers.push(createTensor(inputs[0]!, c.values, t.weight.dims, 'int8'));
  initializers.push(createTensor(inputs[1]!, c.scales, paramDims));
  if (zeroPoint) {
    inputs.push(g.fresh(`${t.weight.name}.zero_point`));
    initializers.push(createTensor(inputs[2]!, new Int8Array(c.scales.length), paramDims, 'int8'));
  }
  const output = g.fresh(`${t.weight.name}.dequantized`);
  report.weights++;
  report.floatBytes += (t.weight.data as Float32Array).byteLength;
  report.int8Bytes += c.values.byteLength + c.scales.byteLength * (zeroPoint ? 2 : 1);
  report.maxWeightError = Math.max(report.maxWeightError, c.maxError);
  return {
    output,
    node: node(
      'DequantizeLinear',
      inputs,
      [output],
      g.fresh(`${t.weight.name}.DequantizeLinear`),
      t.axis === undefined ? {} : { axis: intAttr(t.axis) },
    ),
  };
}
