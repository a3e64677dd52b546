import type { LlmTokenizer } from '../decoder-model.js';
import { BPE_PRE_TOKENIZERS, type BpePreTokenizer, splitWords } from './bpe-pre-tokenizers.js';
import { fromByteLevel, toByteLevel } from './byte-level.js';
import { SpecialSplitter, specialTokensOf, type StripIds } from './special-splitter.js';
import { ByteStreamDecoder, type StreamDecoder, type StreamDecoderOptions } from './stream-decoder.js';
import { byteOfPiece, concatBytes, TokenType, utf8Bytes } from './token-types.js';

/** Everything a GPT-2 style byte-level BPE vocabulary needs. */
export interface Gpt2BpeOptions {
  /** Byte-level spelled pieces (`Ġthe`). */
  pieces: readonly string[];
  /** `"left right"`, highest priority first. */
  merges: readonly string[];
  types: readonly number[];
  bosTokenId?: number;
  eosTokenIds: readonly number[];
  /** Key of `BPE_PRE_TOKENIZERS`; default `gpt-2` (a GGUF without `tokenizer.ggml.pre` means `default`). */
  pre?: string;
  addsBos: boolean;
  /** Whether EOS goes last when special tokens are added (GGUF `add_eos_token`). */
  addsEos?: boolean;
  /** Ids that drop the whitespace around them when cut out of the text. */
  strip?: StripIds;
}

/** Byte-level BPE as GPT-2, Llama 3 and Qwen use it: regex pre-tokenization, then merges by rank. */
export class Gpt2BpeTokenizer implements LlmTokenizer {
  readonly vocabSize: number;
  readonly bosTokenId?: number;
  readonly eosTokenIds: readonly number[];
  private readonly pieceToId = new Map<string, number>();
  private readonly ranks = new Map<string, number>();
  private readonly splitter: SpecialSplitter;
  private readonly pre: BpePreTokenizer;
  private readonly cache = new Map<string, number[]>();

  constructor(private readonly o: Gpt2BpeOptions) {
    this.vocabSize = o.pieces.length;
    if (o.bosTokenId !== undefined) this.bosTokenId = o.bosTokenId;
    this.eosTokenIds = [...o.eosTokenIds];
    o.pieces.forEach((p, id) => {
      if (!this.pieceToId.has(p)) this.pieceToId.set(p, id);
    });
    // The first of equal merges wins, as in llama.cpp.
    o.merges.forEach((m, rank) => {
      if (!this.ranks.has(m)) this.ranks.set(m, rank);
    });
    const pre = BPE_PRE_TOKENIZERS[o.pre ?? 'gpt-2'];
    if (!pre)
      throw new Error(
        `unknown BPE pre-tokenizer "${o.pre}" (supported: ${Object.keys(BPE_PRE_TOKENIZERS).join(', ')})`,
      );
    this.pre = pre;
    this.splitter = new SpecialSplitter(specialTokensOf(o.pieces, o.types, o.strip));
  }

  encode(text: string, options: { addBos?: boolean; parseSpecial?: boolean } = {}): number[] {
    const out: number[] = [];
    const fragments = this.splitter.split(text, options.parseSpecial ?? true);
    const bos = this.o.bosTokenId;
    if (options.addBos && this.o.addsBos && bos !== undefined) {
      const first = fragments[0];
      if (!(first && 'id' in first && first.id === bos)) out.push(bos);
    }
    for (const f of fragments) {
      if ('id' in f) out.push(f.id);
      else for (const word of splitWords(f.text, this.pre.regexes)) out.push(...this.encodeWord(toByteLevel(word)));
    }
    const eos = this.o.eosTokenIds[0];
    if (options.addBos && this.o.addsEos && eos !== undefined) out.push(eos);
    return out;
  }

  decode(ids: readonly number[], options: { keepSpecial?: boolean } = {}): string {
    return new TextDecoder().decode(concatBytes(ids.map((id) => this.pieceBytes(id, options.keepSpecial ?? false))));
  }

  createStreamDecoder(options: StreamDecoderOptions = {}): StreamDecoder {
    const keepSpecial = options.keepSpecial ?? false;
    return new ByteStreamDecoder((id) => ({ bytes: this.pieceBytes(id, keepSpecial), text: true }));
  }

  /**
   * The bytes of one token as llama.cpp's `llama_token_to_piece` gives them: control and unknown tokens only with
   * `special`, user-defined ones as written, the rest byte-level decoded. A piece can be part of a UTF-8 character.
   */
  pieceBytes(id: number, special = false): Uint8Array {
    const piece = this.o.pieces[id];
    if (piece === undefined) return new Uint8Array(0);
    const type = this.o.types[id] ?? TokenType.normal;
    switch (type) {
      case TokenType.control:
      case TokenType.unknown:
        return special ? utf8Bytes(piece) : new Uint8Array(0);
      case TokenType.userDefined:
        return utf8Bytes(piece);
      case TokenType.normal:
        return fromByteLevel(piece);
      case TokenType.byte: {
        const b = byteOfPiece(piece);
        return b === undefined ? new Uint8Array(0) : Uint8Array.of(b);
      }
      default:
        return new Uint8Array(0);
    }
  }

  private encodeWord(word: string): number[] {
    const cached = this.cache.get(word);
    if (cached) return cached;
    // Llama 3's tokenizer takes a word that is itself a piece as is, before any merge (`ignore_merges`).
    const whole = this.pre.ignoreMerges ? this.pieceToId.get(word) : undefined;
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
