import { definePlugin, ExtensionPoints } from '@nucleus/sdk';
import { DEFAULT_INT8_OPTIONS, Int8WeightTransform, type Int8Options } from './int8-weight-transform.js';

export {
  blockSizeFor,
  dequantizeBlocks,
  quantizeBlocks,
  type Int8Blocks,
  type WeightLayout,
} from './block-quantizer.js';
export {
  DEFAULT_INT8_OPTIONS,
  describeInt8,
  Int8WeightTransform,
  quantizeInt8,
  type Int8Options,
  type Int8Report,
} from './int8-weight-transform.js';

/** Contributes the `int8` model transform; a model asks for it with `models[].quantize: int8`. */
export default definePlugin<Partial<Int8Options>>({
  activate(ctx) {
    const options: Int8Options = { ...DEFAULT_INT8_OPTIONS, ...ctx.config };
    ctx.contribute(ExtensionPoints.modelTransform, new Int8WeightTransform(options));
  },
});
