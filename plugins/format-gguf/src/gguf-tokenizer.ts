import { BPE_PRE_TOKENIZERS, TokenType, type TokenizerSpec } from '@nucleus/sdk/llm';
import type { GgufValue } from './gguf-reader.js';

/** The tokenizer a GGUF vocabulary describes, with the ids generation starts and stops on. */
export interface GgufTokenizer {
  spec: TokenizerSpec;
  bosTokenId?: number;
  eosTokenIds: number[];
}

/**
 * Reads `tokenizer.ggml.*`: a SentencePiece (`llama`) or byte-level BPE (`gpt2`) vocabulary. Adds what is wrong to
 * `problems` rather than throwing, so a load reports every problem at once.
 */
export function ggufTokenizer(md: Map<string, GgufValue>, vocabSize: number, problems: string[]): GgufTokenizer {
  const kind = md.get('tokenizer.ggml.model');
  const tokens = md.get('tokenizer.ggml.tokens');
  const empty = {
    spec: {
      kind: 'sentencepiece',
      pieces: [],
      scores: [],
      types: [],
      eosTokenIds: [],
      addDummyPrefix: false,
      byteFallback: false,
    } as TokenizerSpec,
    eosTokenIds: [],
  };
  if (!Array.isArray(tokens) || tokens.some((t) => typeof t !== 'string')) {
    problems.push('tokenizer.ggml.tokens is missing');
    return empty;
  }
  const pieces = tokens as string[];
  if (vocabSize > 0 && pieces.length !== vocabSize)
    problems.push(`${pieces.length} tokens in the vocabulary, token_embd has ${vocabSize} rows`);
  const numbers = (key: string): number[] | undefined => {
    const v = md.get(key);
    return Array.isArray(v) ? v.map((x) => Number(x)) : undefined;
  };
  const types = numbers('tokenizer.ggml.token_type') ?? pieces.map(() => TokenType.normal);
  // Ids outside the vocabulary (converters write 0xFFFFFFFF for "none") mean absent.
  const id = (key: string): number | undefined => {
    const v = md.get(key);
    const n = typeof v === 'bigint' ? Number(v) : v;
    return typeof n === 'number' && Number.isInteger(n) && n >= 0 && n < pieces.length ? n : undefined;
  };
  const bosTokenId = id('tokenizer.ggml.bos_token_id');
  // llama.cpp stops on EOS and also on end-of-turn / end-of-message tokens.
  const eosTokenIds = [
    ...new Set(
      ['eos_token_id', 'eot_token_id', 'eom_token_id']
        .map((k) => id(`tokenizer.ggml.${k}`))
        .filter((v): v is number => v !== undefined),
    ),
  ];
  const flag = (key: string): boolean | undefined => {
    const v = md.get(key);
    return typeof v === 'boolean' ? v : undefined;
  };
  const base = { pieces, types, eosTokenIds, ...(bosTokenId !== undefined ? { bosTokenId } : {}) };

  if (kind === 'llama') {
    const scores = numbers('tokenizer.ggml.scores');
    if (!scores) problems.push('tokenizer.ggml.scores is missing (needed by the "llama" tokenizer)');
    const unk = id('tokenizer.ggml.unknown_token_id');
    const spec: TokenizerSpec = {
      kind: 'sentencepiece',
      ...base,
      scores: scores ?? [],
      addDummyPrefix: flag('tokenizer.ggml.add_space_prefix') ?? true,
      byteFallback: types.includes(TokenType.byte),
      addBos: flag('tokenizer.ggml.add_bos_token') ?? true,
      ...(unk !== undefined ? { unkTokenId: unk } : {}),
    };
    return { spec, eosTokenIds, ...(bosTokenId !== undefined ? { bosTokenId } : {}) };
  }
  if (kind === 'gpt2') {
    const merges = md.get('tokenizer.ggml.merges');
    if (!Array.isArray(merges)) problems.push('tokenizer.ggml.merges is missing (needed by the "gpt2" tokenizer)');
    const pre = typeof md.get('tokenizer.ggml.pre') === 'string' ? (md.get('tokenizer.ggml.pre') as string) : 'default';
    if (!BPE_PRE_TOKENIZERS[pre])
      problems.push(`BPE pre-tokenizer "${pre}" (supported: ${Object.keys(BPE_PRE_TOKENIZERS).join(', ')})`);
    const spec: TokenizerSpec = {
      kind: 'gpt2-bpe',
      ...base,
      merges: Array.isArray(merges) ? merges.map(String) : [],
      pre,
      addBos: flag('tokenizer.ggml.add_bos_token') ?? false,
    };
    return { spec, eosTokenIds, ...(bosTokenId !== undefined ? { bosTokenId } : {}) };
  }
  problems.push(`tokenizer model ${JSON.stringify(kind ?? null)} (supported: "llama", "gpt2")`);
  return empty;
}
