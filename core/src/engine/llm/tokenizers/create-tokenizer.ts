import type { LlmTokenizer, TokenizerSpec } from '../llm-model.js';
import { Gpt2BpeTokenizer } from './gpt2-bpe-tokenizer.js';
import { HfTokenizer } from './hf-tokenizer.js';
import { SentencePieceTokenizer } from './sentencepiece-tokenizer.js';
import { byteOfPiece, TokenType } from './token-types.js';

/** Rebuilds a tokenizer from its plain-data spec (works the same in a worker thread). */
export function createTokenizer(spec: TokenizerSpec): LlmTokenizer {
  switch (spec.kind) {
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
        spaceChar: '\u2581',
        parseSpecial: true,
        addsBos: spec.addBos ?? true,
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
      });
    case 'llama2c': {
      // tok512.bin has no types: bytes are the `<0xNN>` pieces, ids 0..2 unknown/BOS/EOS, the rest text.
      const types = spec.pieces.map((p, id) =>
        id === 0 ? TokenType.unknown : id === spec.bosTokenId || spec.eosTokenIds.includes(id) ? TokenType.control : byteOfPiece(p) !== undefined ? TokenType.byte : TokenType.normal,
      );
      return new SentencePieceTokenizer({
        pieces: spec.pieces,
        scores: spec.scores,
        types,
        bosTokenId: spec.bosTokenId,
        eosTokenIds: spec.eosTokenIds,
        unkTokenId: 0,
        addDummyPrefix: true,
        byteFallback: true,
        spaceChar: ' ',
        // run.c never reads special tokens out of the text.
        parseSpecial: false,
        addsBos: true,
      });
    }
  }
}
