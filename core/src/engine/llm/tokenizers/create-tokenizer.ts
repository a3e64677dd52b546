import type { LlmTokenizer, TokenizerSpec } from '../llm-model.js';
import { HfTokenizer } from './hf-tokenizer.js';

/** Rebuilds a tokenizer from its plain-data spec (works the same in a worker thread). */
export function createTokenizer(spec: TokenizerSpec): LlmTokenizer {
  switch (spec.kind) {
    case 'hf': {
      const ids: { bosTokenId?: number; eosTokenIds?: number[] } = {};
      if (spec.bosTokenId !== undefined) ids.bosTokenId = spec.bosTokenId;
      if (spec.eosTokenIds !== undefined) ids.eosTokenIds = spec.eosTokenIds;
      return new HfTokenizer(spec.tokenizerJson, spec.tokenizerConfig, ids);
    }
    default:
      throw new Error(`tokenizer kind ${spec.kind} is not implemented yet`);
  }
}
