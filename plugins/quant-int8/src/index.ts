import { definePlugin } from '@nucleus/sdk';

/**
 * Int8 quantization of ONNX graphs. Not implemented yet: the plugin activates so that operators can
 * see it and pin its version, but it rewrites no model, and says so at activation.
 */
export default definePlugin({
  activate(ctx) {
    ctx.logger.info('quant-int8 is installed but does not quantize models yet; models run at their stored precision');
  },
});
