/**
 * GPT-2's byte ↔ printable-character map: byte-level BPE vocabularies (tokenizer.json ByteLevel, GGUF `gpt2`)
 * spell every byte as one visible character so that pieces are valid strings.
 */
export const BYTE_TO_CHAR: readonly string[] = (() => {
  const printable = (b: number): boolean => (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
  const out: string[] = [];
  let extra = 0;
  for (let b = 0; b < 256; b++) out.push(String.fromCodePoint(printable(b) ? b : 256 + extra++));
  return out;
})();

/** The inverse of `BYTE_TO_CHAR`. */
export const CHAR_TO_BYTE: ReadonlyMap<string, number> = new Map(BYTE_TO_CHAR.map((c, b) => [c, b]));

/** GPT-2's pre-tokenization pattern (contractions, letter runs, digit runs, punctuation runs, whitespace). */
export const GPT2_SPLIT = /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;

/** A string's UTF-8 bytes spelled with `BYTE_TO_CHAR`. */
export function toByteLevel(text: string): string {
  let out = '';
  for (const b of new TextEncoder().encode(text)) out += BYTE_TO_CHAR[b];
  return out;
}

/** The bytes a byte-level piece spells; characters outside the map are taken as their own UTF-8. */
export function fromByteLevel(piece: string): Uint8Array {
  const bytes: number[] = [];
  for (const ch of piece) {
    const b = CHAR_TO_BYTE.get(ch);
    if (b !== undefined) bytes.push(b);
    else bytes.push(...new TextEncoder().encode(ch));
  }
  return Uint8Array.from(bytes);
}
