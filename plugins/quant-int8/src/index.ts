import { definePlugin, ExtensionPoints } from '@nucleus/sdk';
import { DynamicInt8Transform } from './dynamic-int8-transform.js';
import { Fp16WeightTransform } from './fp16-weight-transform.js';
import { StaticInt8Transform } from './static-int8-transform.js';
import { WeightDqTransform } from './weight-dq-transform.js';
import { DEFAULT_INT8_OPTIONS, WeightOnlyTransform, type WeightOnlyOptions } from './weight-only-transform.js';

export {
  blockSizeFor,
  dequantizeBlocks,
  packNibbles,
  quantizeBlocks,
  type BlockScheme,
  type Int8Blocks,
  type QuantizedBlocks,
  type WeightLayout,
} from './block-quantizer.js';
export { readSamples, type Sample, type SampleTensor } from './calibration-data.js';
export { calibrateRanges } from './calibrate.js';
export { entropyThreshold, HISTOGRAM_BINS, percentileThreshold, TensorStats, type TensorRange } from './calibrator.js';
export { activationParams, quantizeChannels, roundHalfEven } from './channel-quantizer.js';
export { DynamicInt8Transform, dynamicGap, quantizeDynamic } from './dynamic-int8-transform.js';
export { describeFp16, Fp16WeightTransform, quantizeFp16, type Fp16Report } from './fp16-weight-transform.js';
export { NodeFilter } from './node-filter.js';
export {
  parseQuantizeOptions,
  type CalibratorKind,
  type DynamicOptions,
  type Fp16Options,
  type StaticOptions,
  type WeightDqOptions,
} from './quantize-options.js';
export {
  describeQuantize,
  insertQdq,
  planQdq,
  quantizeStatic,
  StaticInt8Transform,
  type QuantizeReport,
} from './static-int8-transform.js';
export { computeRopeTables, type RopeTablesReport } from './rope-tables.js';
export { describeWeightDq, quantizeWeightsDq, WeightDqTransform } from './weight-dq-transform.js';
export {
  DEFAULT_INT8_OPTIONS,
  describeInt8,
  describeWeightOnly,
  Int8WeightTransform,
  quantizeInt8,
  quantizeWeights,
  WeightOnlyTransform,
  type Int8Options,
  type Int8Report,
  type WeightOnlyOptions,
  type WeightOnlyReport,
} from './weight-only-transform.js';

/**
 * Contributes the model transforms `int8` and `int4` (weight-only blocks), `int8-dq` (int8 weights behind DequantizeLinear, float compute), `fp16` (float16 weights), `dynamic` (int8
 * activations quantized at run time) and `static` (int8 activations calibrated on samples); a model asks for one with
 * `models[].quantize`.
 */
export default definePlugin<Partial<WeightOnlyOptions>>({
  activate(ctx) {
    const options: WeightOnlyOptions = { ...DEFAULT_INT8_OPTIONS, ...ctx.config };
    ctx.contribute(ExtensionPoints.modelTransform, new WeightOnlyTransform(options, 'int8'));
    ctx.contribute(ExtensionPoints.modelTransform, new WeightOnlyTransform(options, 'int4'));
    ctx.contribute(ExtensionPoints.modelTransform, new Fp16WeightTransform());
    ctx.contribute(ExtensionPoints.modelTransform, new DynamicInt8Transform());
    ctx.contribute(ExtensionPoints.modelTransform, new StaticInt8Transform());
    ctx.contribute(ExtensionPoints.modelTransform, new WeightDqTransform());
  },
});
