import { definePlugin } from '@nucleus/sdk';

/**
 * Speculative decoding. Not implemented yet: the plugin activates so that operators can see it and
 * pin its version, but generation runs without a draft model, and it says so at activation.
 */
export default definePlugin({
  activate(ctx) {
    ctx.logger.info('spec-decode is installed but does not speculate yet; generation decodes one token per step');
  },
});
