import type { LlmTokenizer, TokenizerFactory, TokenizerSpec } from '../decoder-model.js';
import { Gpt2BpeTokenizer } from './gpt2-bpe-tokenizer.js';
import { HfTokenizer } from './hf-tokenizer.js';
import { SentencePieceTokenizer } from './sentencepiece-tokenizer.js';

/**
 * Rebuilds one of the SDK's tokenizers from its plain-data spec (works the same in a worker thread). A `module` spec
 * needs an import: use {@link loadTokenizer}.
 */
export function createTokenizer(spec: TokenizerSpec): LlmTokenizer {
  switch (spec.kind) {
    case 'module':
      throw new Error(`the tokenizer in ${spec.module} is imported on first use: load it with loadTokenizer`);
    case 'hf': {
      const ids: { bosTokenId?: number; eosTokenIds?: number[] } = {};
      if (spec.bosTokenId !== undefined) ids.bosTokenId = spec.bosTokenId;
      if (spec.eosTokenIds !== undefined) ids.eosTokenIds = spec.eosTokenIds;
      return new HfTokenizer(spec.tokenizerJson, spec.tokenizerConfig, ids);
    }
    case 'sentencepiece':
      return new SentencePieceTokenizer({
        pieces: spec.pieces,
        scores: spec.scores,
        types: spec.types,
        ...(spec.bosTokenId !== undefined ? { bosTokenId: spec.bosTokenId } : {}),
        eosTokenIds: spec.eosTokenIds,
        ...(spec.unkTokenId !== undefined ? { unkTokenId: spec.unkTokenId } : {}),
        addDummyPrefix: spec.addDummyPrefix,
        byteFallback: spec.byteFallback,
        spaceChar: spec.spaceChar ?? '\u2581',
        parseSpecial: spec.parseSpecial ?? true,
        addsBos: spec.addBos ?? true,
        addsEos: spec.addEos ?? false,
        strip: { lstrip: spec.lstrip ?? [], rstrip: spec.rstrip ?? [] },
      });
    case 'gpt2-bpe':
      return new Gpt2BpeTokenizer({
        pieces: spec.pieces,
        merges: spec.merges,
        types: spec.types,
        ...(spec.bosTokenId !== undefined ? { bosTokenId: spec.bosTokenId } : {}),
        eosTokenIds: spec.eosTokenIds,
        ...(spec.pre !== undefined ? { pre: spec.pre } : {}),
        addsBos: spec.addBos ?? true,
        addsEos: spec.addEos ?? false,
        strip: { lstrip: spec.lstrip ?? [], rstrip: spec.rstrip ?? [] },
      });
  }
}

/** Any {@link TokenizerSpec}, a format's own `module` tokenizer included (imported on first use). */
export async function loadTokenizer(spec: TokenizerSpec): Promise<LlmTokenizer> {
  if (spec.kind !== 'module') return createTokenizer(spec);
  const imported = (await import(spec.module)) as { default?: unknown };
  if (typeof imported.default !== 'function')
    throw new Error(`${spec.module} has no default export that creates a tokenizer`);
  return (imported.default as TokenizerFactory)(spec.options);
}
