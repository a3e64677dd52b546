import { definePlugin, ExtensionPoints, type DraftProposerSpec, type SpeculationAutoOff } from '@nucleus/sdk';
import { DEFAULT_NGRAM_OPTIONS, type NgramOptions } from './ngram-proposer.js';

export {
  DEFAULT_NGRAM_OPTIONS,
  NgramProposer,
  default as createNgramProposer,
  type NgramOptions,
} from './ngram-proposer.js';
export { DraftModelProposer, default as createDraftModelProposer } from './draft-model-proposer.js';

/** The plugin's settings (`plugin.spec-decode.*`), defaults filled in. */
export interface SpecDecodeSettings extends NgramOptions {
  numSpeculativeTokens: number;
  maxBatch: number;
  /** Auto-off threshold: accepted over drafted tokens below which a request stops drafting for a while; 0 is off. */
  autoOffMinAcceptance: number;
  /** The same for the ngram method: off by default, since its drafts run no model. */
  ngramAutoOffMinAcceptance: number;
  /** Draft tokens the running acceptance rate is measured over. */
  autoOffWindow: number;
  /** Plain decode steps a paused request runs before it drafts again. */
  autoOffCoolDownSteps: number;
}

export const DEFAULT_SPEC_DECODE_SETTINGS: SpecDecodeSettings = {
  numSpeculativeTokens: 4,
  maxBatch: 4,
  autoOffMinAcceptance: 0.5,
  ngramAutoOffMinAcceptance: 0,
  autoOffWindow: 16,
  autoOffCoolDownSteps: 32,
  ...DEFAULT_NGRAM_OPTIONS,
};

// The auto-off of these settings; undefined when the threshold is 0.
function autoOff(s: SpecDecodeSettings): SpeculationAutoOff | undefined {
  if (s.autoOffMinAcceptance <= 0) return undefined;
  return { minAcceptance: s.autoOffMinAcceptance, window: s.autoOffWindow, coolDownSteps: s.autoOffCoolDownSteps };
}

/** The `ngram` method as the `draftProposer` extension point takes it, for these settings. */
export function ngramMethod(settings: Partial<SpecDecodeSettings> = {}): DraftProposerSpec {
  const s = { ...DEFAULT_SPEC_DECODE_SETTINGS, ...settings };
  if (s.promptLookupMax < s.promptLookupMin)
    throw new Error(
      `plugin.spec-decode.promptLookupMax (${s.promptLookupMax}) is below promptLookupMin (${s.promptLookupMin})`,
    );
  const off = autoOff({ ...s, autoOffMinAcceptance: s.ngramAutoOffMinAcceptance });
  return {
    name: 'ngram',
    module: new URL('./ngram-proposer.js', import.meta.url).href,
    options: { promptLookupMin: s.promptLookupMin, promptLookupMax: s.promptLookupMax },
    numSpeculativeTokens: s.numSpeculativeTokens,
    maxBatch: s.maxBatch,
    ...(off && { autoOff: off }),
  };
}

/** The `draft` method (a draft model the model's config names, or its own first layers), for these settings. */
export function draftMethod(settings: Partial<SpecDecodeSettings> = {}): DraftProposerSpec {
  const s = { ...DEFAULT_SPEC_DECODE_SETTINGS, ...settings };
  const off = autoOff(s);
  return {
    name: 'draft',
    module: new URL('./draft-model-proposer.js', import.meta.url).href,
    numSpeculativeTokens: s.numSpeculativeTokens,
    maxBatch: s.maxBatch,
    needsDraftModel: true,
    // A draft model's agreement is the pair's, not a request's: a pause carries over to the next requests.
    ...(off && { autoOff: { ...off, acrossRequests: true } }),
  };
}

/**
 * Speculative decoding: contributes the `ngram` (prompt lookup) and `draft` (draft model, self-speculation) methods; a
 * model uses one with `models[].speculative` or `models[].speculation`. The proposer runs in the model's generation
 * worker, the loop verifies its drafts.
 */
export default definePlugin({
  activate(ctx) {
    const settings = ctx.config as Partial<SpecDecodeSettings>;
    for (const method of [ngramMethod(settings), draftMethod(settings)]) {
      ctx.contribute(ExtensionPoints.draftProposer, method, { name: method.name });
      ctx.logger.info(
        {
          method: method.name,
          numSpeculativeTokens: method.numSpeculativeTokens,
          maxBatch: method.maxBatch,
          autoOff: method.autoOff ?? false,
        },
        'speculative decoding method available',
      );
    }
  },
});
