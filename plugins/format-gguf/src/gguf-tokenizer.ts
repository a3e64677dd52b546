import { BPE_PRE_TOKENIZERS, TokenType, type TokenizerSpec } from '@nucleus/sdk/llm';
import type { GgufValue } from './gguf-reader.js';

/** The tokenizer a GGUF vocabulary describes, with the ids generation starts and stops on. */
export interface GgufTokenizer {
  spec: TokenizerSpec;
  bosTokenId?: number;
  eosTokenIds: number[];
}

// Tokens llama.cpp ends generation on by their text (llama-vocab.cpp), besides the eos/eot/eom ids; it also makes
// them control tokens, so they print nothing and are parsed only as special text.
const END_OF_GENERATION = new Set([
  '<|eot_id|>',
  '<|im_end|>',
  '<|end|>',
  '<end_of_turn>',
  '<|endoftext|>',
  '<|eom_id|>',
  '<EOT>',
  '_<EOT>',
  '<|end_of_text|>',
  '<end_of_utterance>',
]);

const isSpecialType = (t: number | undefined): boolean =>
  t === TokenType.control || t === TokenType.userDefined || t === TokenType.unknown;

/**
 * Reads `tokenizer.ggml.*` as llama.cpp does: a SentencePiece (`llama`) or byte-level BPE (`gpt2`) vocabulary, its
 * pre-tokenizer, BOS/EOS flags with llama.cpp's defaults, and the tokens that end generation. Adds what is wrong to
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
  const flag = (key: string): boolean | undefined => {
    const v = md.get(key);
    return typeof v === 'boolean' ? v : undefined;
  };
  const bosTokenId = id('tokenizer.ggml.bos_token_id');
  const eos = id('tokenizer.ggml.eos_token_id');
  const ends = new Set(
    ['eos_token_id', 'eot_token_id', 'eom_token_id']
      .map((k) => id(`tokenizer.ggml.${k}`))
      .filter((v): v is number => v !== undefined),
  );
  pieces.forEach((p, i) => {
    if (!END_OF_GENERATION.has(p)) return;
    ends.add(i);
    types[i] = TokenType.control;
  });
  // The EOS id first: it is the one appended when a model adds EOS.
  const eosTokenIds = [
    ...(eos !== undefined ? [eos] : []),
    ...[...ends].filter((e) => e !== eos).sort((a, b) => a - b),
  ];
  const strip = phi3Strip(md, pieces, types);
  const addEos = flag('tokenizer.ggml.add_eos_token') ?? false;
  const base = {
    pieces,
    types,
    eosTokenIds,
    ...(bosTokenId !== undefined ? { bosTokenId } : {}),
    ...(addEos ? { addEos } : {}),
    ...(strip.length > 0 ? { rstrip: strip } : {}),
  };
  const result = (spec: TokenizerSpec, addBos: boolean): GgufTokenizer => {
    if (addBos && bosTokenId === undefined)
      problems.push('tokenizer.ggml.add_bos_token is true, but tokenizer.ggml.bos_token_id is not set');
    if (addEos && eos === undefined)
      problems.push('tokenizer.ggml.add_eos_token is true, but tokenizer.ggml.eos_token_id is not set');
    return { spec, eosTokenIds, ...(bosTokenId !== undefined ? { bosTokenId } : {}) };
  };

  if (kind === 'llama') {
    const scores = numbers('tokenizer.ggml.scores');
    if (!scores) problems.push('tokenizer.ggml.scores is missing (needed by the "llama" tokenizer)');
    const unk = id('tokenizer.ggml.unknown_token_id');
    const addBos = flag('tokenizer.ggml.add_bos_token') ?? true;
    const spec: TokenizerSpec = {
      kind: 'sentencepiece',
      ...base,
      scores: scores ?? [],
      addDummyPrefix: flag('tokenizer.ggml.add_space_prefix') ?? true,
      byteFallback: types.includes(TokenType.byte),
      addBos,
      ...(unk !== undefined ? { unkTokenId: unk } : {}),
    };
    return result(spec, addBos);
  }
  if (kind === 'gpt2') {
    const merges = md.get('tokenizer.ggml.merges');
    if (!Array.isArray(merges)) problems.push('tokenizer.ggml.merges is missing (needed by the "gpt2" tokenizer)');
    // llama.cpp takes a missing pre-tokenizer as `default` (with a warning that quality suffers).
    const preValue = md.get('tokenizer.ggml.pre');
    const pre = typeof preValue === 'string' && preValue.length > 0 ? preValue : 'default';
    const known = BPE_PRE_TOKENIZERS[pre];
    if (!known)
      problems.push(
        `tokenizer.ggml.pre "${pre}" is not a supported BPE pre-tokenizer (supported: ${Object.keys(BPE_PRE_TOKENIZERS).join(', ')})`,
      );
    const addBos = flag('tokenizer.ggml.add_bos_token') ?? known?.addBos ?? false;
    const spec: TokenizerSpec = {
      kind: 'gpt2-bpe',
      ...base,
      merges: Array.isArray(merges) ? merges.map(String) : [],
      pre,
      addBos,
    };
    return result(spec, addBos);
  }
  problems.push(`tokenizer model ${JSON.stringify(kind ?? null)} (supported: "llama", "gpt2")`);
  return empty;
}

/**
 * llama.cpp gives Phi-3 vocabularies (by `general.name`) right-stripping special tokens: text after `<|user|>` etc.
 * loses its leading whitespace. `</s>` strips too; `<unk>`, `<s>` and `<|endoftext|>` do not.
 */
function phi3Strip(md: Map<string, GgufValue>, pieces: readonly string[], types: readonly number[]): number[] {
  const name = md.get('general.name');
  if (typeof name !== 'string' || !/phi-?3/.test(name.toLowerCase())) return [];
  const keep = new Set(['<unk>', '<s>', '<|endoftext|>']);
  const out: number[] = [];
  pieces.forEach((p, i) => {
    if ((isSpecialType(types[i]) || p === '</s>') && !keep.has(p)) out.push(i);
  });
  return out;
}
