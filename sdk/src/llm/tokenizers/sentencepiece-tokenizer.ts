import type { LlmTokenizer } from '../decoder-model.js';
import { SpecialSplitter, specialTokensOf, type StripIds } from './special-splitter.js';
import { ByteStreamDecoder, type StreamDecoder, type StreamDecoderOptions } from './stream-decoder.js';
import { byteOfPiece, concatBytes, TokenType, utf8Bytes } from './token-types.js';

/** Everything a SentencePiece-style (score-merged) vocabulary needs. */
export interface SentencePieceOptions {
  pieces: readonly string[];
  scores: readonly number[];
  /** GGUF token types (1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte). */
  types: readonly number[];
  bosTokenId?: number;
  eosTokenIds: readonly number[];
  unkTokenId?: number;
  /** Prepend a space to text at the start and after each special token, as SentencePiece's dummy prefix does. */
  addDummyPrefix: boolean;
  /** Characters without a piece become `<0xNN>` byte tokens (else the unknown token). */
  byteFallback: boolean;
  /** How pieces spell a space: `▁` (SentencePiece, GGUF) or a plain space (llama2.c). */
  spaceChar: string;
  /** Whether control and user-defined tokens written in the text become those tokens. */
  parseSpecial: boolean;
  /** Whether the model expects BOS first (GGUF `add_bos_token`). */
  addsBos: boolean;
  /** Whether EOS goes last when special tokens are added (GGUF `add_eos_token`). */
  addsEos?: boolean;
  /** Ids that drop the whitespace around them when cut out of the text. */
  strip?: StripIds;
}

interface Symbol {
  text: string;
  prev: number;
  next: number;
}

interface Bigram {
  left: number;
  right: number;
  score: number;
  text: string;
}

/**
 * The SentencePiece BPE encoder of llama.cpp and llama2.c's run.c: start from characters, repeatedly merge the
 * adjacent pair whose concatenation is the highest-scoring piece (leftmost on ties), then fall back to byte tokens
 * for characters the vocabulary lacks.
 */
export class SentencePieceTokenizer implements LlmTokenizer {
  readonly vocabSize: number;
  readonly bosTokenId?: number;
  readonly eosTokenIds: readonly number[];
  private readonly pieceToId = new Map<string, number>();
  private readonly byteToId = new Map<number, number>();
  private readonly idToByte = new Map<number, number>();
  private readonly splitter: SpecialSplitter | undefined;

  constructor(private readonly o: SentencePieceOptions) {
    this.vocabSize = o.pieces.length;
    if (o.bosTokenId !== undefined) this.bosTokenId = o.bosTokenId;
    this.eosTokenIds = [...o.eosTokenIds];
    o.pieces.forEach((piece, id) => {
      if (!this.pieceToId.has(piece)) this.pieceToId.set(piece, id);
      const b = byteOfPiece(piece);
      if (b !== undefined && (o.types[id] === TokenType.byte || o.types[id] === undefined)) {
        if (!this.byteToId.has(b)) this.byteToId.set(b, id);
        this.idToByte.set(id, b);
      }
    });
    if (o.parseSpecial) this.splitter = new SpecialSplitter(specialTokensOf(o.pieces, o.types, o.strip));
  }

  encode(text: string, options: { addBos?: boolean; parseSpecial?: boolean } = {}): number[] {
    const out: number[] = [];
    const fragments = this.splitter
      ? this.splitter.split(text, options.parseSpecial ?? true)
      : text.length > 0
        ? [{ text }]
        : [];
    const bos = this.o.bosTokenId;
    if (options.addBos && this.o.addsBos && bos !== undefined) {
      const first = fragments[0];
      if (!(first && 'id' in first && first.id === bos)) out.push(bos);
    }
    let afterSpecial = true;
    for (const f of fragments) {
      if ('id' in f) {
        out.push(f.id);
        afterSpecial = true;
        continue;
      }
      const withPrefix = this.o.addDummyPrefix && afterSpecial ? ` ${f.text}` : f.text;
      this.encodeRaw(this.o.spaceChar === ' ' ? withPrefix : withPrefix.replaceAll(' ', this.o.spaceChar), out);
      afterSpecial = false;
    }
    const eos = this.o.eosTokenIds[0];
    if (options.addBos && this.o.addsEos && eos !== undefined) out.push(eos);
    return out;
  }

  decode(ids: readonly number[], options: { keepSpecial?: boolean } = {}): string {
    const chunks: Uint8Array[] = [];
    let atStart = true;
    for (const id of ids) {
      const bytes = this.tokenBytes(id, atStart, options.keepSpecial ?? false);
      // The dummy prefix's space is dropped only when nothing has been printed before it.
      if (bytes.length > 0) atStart = false;
      chunks.push(bytes);
    }
    return new TextDecoder().decode(concatBytes(chunks));
  }

  createStreamDecoder(options: StreamDecoderOptions = {}): StreamDecoder {
    const atStart = !(options.prefix ?? []).some((id) => this.isText(id));
    return new ByteStreamDecoder((id, start) => {
      const bytes = this.tokenBytes(id, start, options.keepSpecial ?? false);
      return { bytes, text: bytes.length > 0 };
    }, atStart);
  }

  /**
   * The bytes of one token as llama.cpp's `llama_token_to_piece` gives them: the dummy prefix's space kept, control
   * and unknown tokens only with `special`. A byte token is a single byte, possibly part of a UTF-8 character.
   */
  pieceBytes(id: number, special = false): Uint8Array {
    return this.tokenBytes(id, false, special);
  }

  /** The piece of `id` as its vocabulary spells it. */
  piece(id: number): string | undefined {
    return this.o.pieces[id];
  }

  private isText(id: number): boolean {
    const t = this.o.types[id] ?? TokenType.normal;
    return t === TokenType.normal || t === TokenType.userDefined || t === TokenType.byte;
  }

  private tokenBytes(id: number, atStart: boolean, keepSpecial: boolean): Uint8Array {
    const piece = this.o.pieces[id];
    if (piece === undefined) return new Uint8Array(0);
    const byte = this.idToByte.get(id);
    if (byte !== undefined) return Uint8Array.of(byte);
    const type = this.o.types[id] ?? TokenType.normal;
    if (type === TokenType.control || type === TokenType.unknown)
      return keepSpecial ? utf8Bytes(piece) : new Uint8Array(0);
    // As llama.cpp: user-defined tokens print as written; unused (and untyped) ones print nothing.
    if (type === TokenType.userDefined) return utf8Bytes(piece);
    if (type !== TokenType.normal) return new Uint8Array(0);
    let text = this.o.spaceChar === ' ' ? piece : piece.replaceAll(this.o.spaceChar, ' ');
    // The dummy prefix added on encoding is taken off again at the start of the text (run.c: right after BOS).
    if (atStart && this.o.addDummyPrefix && text.startsWith(' ')) text = text.slice(1);
    return utf8Bytes(text);
  }

  private encodeRaw(text: string, out: number[]): void {
    const chars = [...text];
    if (chars.length === 0) return;
    const symbols: Symbol[] = chars.map((c, i) => ({ text: c, prev: i - 1, next: i + 1 < chars.length ? i + 1 : -1 }));
    const heap = new BigramHeap();
    const tryPair = (left: number, right: number): void => {
      if (left < 0 || right < 0) return;
      const joined = symbols[left]!.text + symbols[right]!.text;
      const id = this.pieceToId.get(joined);
      if (id === undefined) return;
      heap.push({ left, right, score: this.o.scores[id] ?? 0, text: joined });
    };
    for (let i = 0; i + 1 < symbols.length; i++) tryPair(i, i + 1);
    for (let b = heap.pop(); b; b = heap.pop()) {
      const l = symbols[b.left]!;
      const r = symbols[b.right]!;
      // Skip bigrams made stale by an earlier merge of either side.
      if (l.text.length === 0 || r.text.length === 0 || l.text + r.text !== b.text || l.next !== b.right) continue;
      l.text = b.text;
      r.text = '';
      l.next = r.next;
      if (r.next >= 0) symbols[r.next]!.prev = b.left;
      tryPair(l.prev, b.left);
      tryPair(b.left, l.next);
    }
    for (let i = 0; i >= 0; i = symbols[i]!.next) {
      const s = symbols[i]!.text;
      const id = this.pieceToId.get(s);
      if (id !== undefined) {
        out.push(id);
        continue;
      }
      for (const byte of utf8Bytes(s)) {
        const byteId = this.o.byteFallback ? this.byteToId.get(byte) : undefined;
        if (byteId !== undefined) out.push(byteId);
        else if (this.o.unkTokenId !== undefined) out.push(this.o.unkTokenId);
        else throw new Error(`cannot encode byte 0x${byte.toString(16)}: no byte token and no unknown token`);
      }
    }
  }
}

// Highest score first, leftmost first among equals (llama.cpp's llm_bigram_spm ordering).
class BigramHeap {
  private readonly items: Bigram[] = [];

  push(b: Bigram): void {
    const a = this.items;
    a.push(b);
    for (let i = a.length - 1; i > 0; ) {
      const p = (i - 1) >> 1;
      if (!before(a[i]!, a[p]!)) break;
      [a[i], a[p]] = [a[p]!, a[i]!];
      i = p;
    }
  }

  pop(): Bigram | undefined {
    const a = this.items;
    const top = a[0];
    const last = a.pop();
    if (a.length > 0 && last) {
      a[0] = last;
      for (let i = 0; ; ) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < a.length && before(a[l]!, a[m]!)) m = l;
        if (r < a.length && before(a[r]!, a[m]!)) m = r;
        if (m === i) break;
        [a[i], a[m]] = [a[m]!, a[i]!];
        i = m;
      }
    }
    return top;
  }
}

function before(a: Bigram, b: Bigram): boolean {
  return a.score > b.score || (a.score === b.score && a.left < b.left);
}
