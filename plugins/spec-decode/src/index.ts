import { definePlugin, ExtensionPoints, type DraftProposerSpec } from '@nucleus/sdk';
import { DEFAULT_NGRAM_OPTIONS, type NgramOptions } from './ngram-proposer.js';

export {
  DEFAULT_NGRAM_OPTIONS,
  NgramProposer,
  default as createNgramProposer,
  type NgramOptions,
} from './ngram-proposer.js';

/** The plugin's settings (`plugin.spec-decode.*`), defaults filled in. */
export interface SpecDecodeSettings extends NgramOptions {
  numSpeculativeTokens: number;
  maxBatch: number;
}

export const DEFAULT_SPEC_DECODE_SETTINGS: SpecDecodeSettings = {
  numSpeculativeTokens: 4,
  maxBatch: 4,
  ...DEFAULT_NGRAM_OPTIONS,
};

/** The `ngram` method as the `draftProposer` extension point takes it, for these settings. */
export function ngramMethod(settings: Partial<SpecDecodeSettings> = {}): DraftProposerSpec {
  const s = { ...DEFAULT_SPEC_DECODE_SETTINGS, ...settings };
  if (s.promptLookupMax < s.promptLookupMin)
    throw new Error(
      `plugin.spec-decode.promptLookupMax (${s.promptLookupMax}) is below promptLookupMin (${s.promptLookupMin})`,
    );
  return {
    name: 'ngram',
    module: new URL('./ngram-proposer.js', import.meta.url).href,
    options: { promptLookupMin: s.promptLookupMin, promptLookupMax: s.promptLookupMax },
    numSpeculativeTokens: s.numSpeculativeTokens,
    maxBatch: s.maxBatch,
  };
}

/**
 * Speculative decoding: contributes the `ngram` (prompt lookup) method; a model uses it with
 * `models[].speculative: "ngram"`. The proposer runs in the model's generation worker, the loop verifies its drafts.
 */
export default definePlugin({
  activate(ctx) {
    const method = ngramMethod(ctx.config as Partial<SpecDecodeSettings>);
    ctx.contribute(ExtensionPoints.draftProposer, method, { name: method.name });
    ctx.logger.info(
      { method: method.name, numSpeculativeTokens: method.numSpeculativeTokens, maxBatch: method.maxBatch },
      'speculative decoding method available',
    );
  },
});
