import { definePlugin, ExtensionPoints } from '@nucleus/sdk';
import { llama2cFormat } from './llama2c-format.js';

export { llama2cFormat, tokenizerCandidates } from './llama2c-format.js';
export {
  loadLlama2c,
  llama2cWeights,
  readLlama2cHeader,
  readLlama2cTokenizer,
  type Llama2cHeader,
  type LoadLlama2cOptions,
} from './load-llama2c.js';

/** Contributes the `llama2c` model format. */
export default definePlugin({
  activate(ctx) {
    ctx.contribute(ExtensionPoints.modelFormat, llama2cFormat);
  },
});
