import type { LlmTokenizer } from '../decoder-model.js';
import { fromByteLevel, GPT2_SPLIT, toByteLevel } from './byte-level.js';
import { SpecialSplitter } from './special-splitter.js';
import { ByteStreamDecoder, type StreamDecoder, type StreamDecoderOptions } from './stream-decoder.js';
import { concatBytes, TokenType, utf8Bytes } from './token-types.js';

// Contractions spelled out case-insensitively: Node 20's RegExp has no `(?i:…)` groups.
const CONTRACTIONS = "'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD]";

/** Pre-tokenizer patterns by GGUF `tokenizer.ggml.pre` name (as llama.cpp's llama-vocab.cpp has them). */
export const BPE_PRE_TOKENIZERS: Readonly<Record<string, RegExp>> = {
  default: GPT2_SPLIT,
  gpt2: GPT2_SPLIT,
  'gpt-2': GPT2_SPLIT,
  'llama-bpe': new RegExp(
    `(?:${CONTRACTIONS})|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+`,
    'gu',
  ),
  llama3: new RegExp(
    `(?:${CONTRACTIONS})|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+`,
    'gu',
  ),
  qwen2: new RegExp(
    `(?:${CONTRACTIONS})|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+`,
    'gu',
  ),
};

/** Everything a GPT-2 style byte-level BPE vocabulary needs. */
export interface Gpt2BpeOptions {
  /** Byte-level spelled pieces (`Ġthe`). */
  pieces: readonly string[];
  /** `"left right"`, highest priority first. */
  merges: readonly string[];
  types: readonly number[];
  bosTokenId?: number;
  eosTokenIds: readonly number[];
  /** Key of `BPE_PRE_TOKENIZERS`; default `default`. */
  pre?: string;
  addsBos: boolean;
}

/** Byte-level BPE as GPT-2, Llama 3 and Qwen use it: regex pre-tokenization, then merges by rank. */
export class Gpt2BpeTokenizer implements LlmTokenizer {
  readonly vocabSize: number;
  readonly bosTokenId?: number;
  readonly eosTokenIds: readonly number[];
  private readonly pieceToId = new Map<string, number>();
  private readonly ranks = new Map<string, number>();
  private readonly splitter: SpecialSplitter;
  private readonly pattern: RegExp;
  private readonly cache = new Map<string, number[]>();
  private readonly ignoreMerges: boolean;

  constructor(private readonly o: Gpt2BpeOptions) {
    this.vocabSize = o.pieces.length;
    if (o.bosTokenId !== undefined) this.bosTokenId = o.bosTokenId;
    this.eosTokenIds = [...o.eosTokenIds];
    o.pieces.forEach((p, id) => {
      if (!this.pieceToId.has(p)) this.pieceToId.set(p, id);
    });
    o.merges.forEach((m, rank) => this.ranks.set(m, rank));
    const pattern = BPE_PRE_TOKENIZERS[o.pre ?? 'default'];
    if (!pattern) throw new Error(`unknown BPE pre-tokenizer ${o.pre}`);
    this.pattern = pattern;
    this.ignoreMerges = o.pre === 'llama3' || o.pre === 'llama-bpe';
    const specials: { text: string; id: number }[] = [];
    o.types.forEach((t, id) => {
      if (t === TokenType.control || t === TokenType.userDefined) specials.push({ text: o.pieces[id]!, id });
    });
    this.splitter = new SpecialSplitter(specials);
  }

  encode(text: string, options: { addBos?: boolean } = {}): number[] {
    const out: number[] = [];
    const fragments = this.splitter.split(text);
    const bos = this.o.bosTokenId;
    if (options.addBos && this.o.addsBos && bos !== undefined) {
      const first = fragments[0];
      if (!(first && 'id' in first && first.id === bos)) out.push(bos);
    }
    for (const f of fragments) {
      if ('id' in f) {
        out.push(f.id);
        continue;
      }
      for (const m of f.text.matchAll(this.pattern)) out.push(...this.encodeWord(toByteLevel(m[0])));
    }
    return out;
  }

  decode(ids: readonly number[], options: { keepSpecial?: boolean } = {}): string {
    return new TextDecoder().decode(concatBytes(ids.map((id) => this.tokenBytes(id, options.keepSpecial ?? false))));
  }

  createStreamDecoder(options: StreamDecoderOptions = {}): StreamDecoder {
    const keepSpecial = options.keepSpecial ?? false;
    return new ByteStreamDecoder((id) => ({ bytes: this.tokenBytes(id, keepSpecial), text: true }));
  }

  private tokenBytes(id: number, keepSpecial: boolean): Uint8Array {
    const piece = this.o.pieces[id];
    if (piece === undefined) return new Uint8Array(0);
    const type = this.o.types[id] ?? TokenType.normal;
    if (type === TokenType.control || type === TokenType.unknown || type === TokenType.unused) {
      return keepSpecial ? utf8Bytes(piece) : new Uint8Array(0);
    }
    // User-defined tokens are stored as plain text, the rest byte-level spelled.
    return type === TokenType.userDefined ? utf8Bytes(piece) : fromByteLevel(piece);
  }

  private encodeWord(word: string): number[] {
    const cached = this.cache.get(word);
    if (cached) return cached;
    // Llama 3's tokenizer takes a word that is itself a piece as is, before any merge (`ignore_merges`).
    const whole = this.ignoreMerges ? this.pieceToId.get(word) : undefined;
    if (whole !== undefined) return [whole];
    let parts = [...word];
    for (;;) {
      let best = -1;
      let bestRank = Infinity;
      for (let i = 0; i + 1 < parts.length; i++) {
        const rank = this.ranks.get(`${parts[i]} ${parts[i + 1]}`);
        if (rank !== undefined && rank < bestRank) {
          bestRank = rank;
          best = i;
        }
      }
      if (best < 0) break;
      const merged: string[] = [];
      const [l, r] = [parts[best]!, parts[best + 1]!];
      for (let i = 0; i < parts.length; i++) {
        if (i + 1 < parts.length && parts[i] === l && parts[i + 1] === r) {
          merged.push(l + r);
          i++;
        } else merged.push(parts[i]!);
      }
      parts = merged;
    }
    const ids: number[] = [];
    for (const p of parts) {
      const id = this.pieceToId.get(p);
      if (id !== undefined) ids.push(id);
      else
        for (const ch of p) {
          const single = this.pieceToId.get(ch);
          if (single === undefined) throw new Error(`byte-level piece ${JSON.stringify(ch)} is not in the vocabulary`);
          ids.push(single);
        }
    }
    if (this.cache.size < 50_000) this.cache.set(word, ids);
    return ids;
  }
}
