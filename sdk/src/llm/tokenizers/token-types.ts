/** Token types as GGUF's `tokenizer.ggml.token_type` numbers them (SentencePiece's piece types). */
export const TokenType = {
  normal: 1,
  unknown: 2,
  control: 3,
  userDefined: 4,
  unused: 5,
  byte: 6,
} as const;

const utf8 = new TextEncoder();

/** UTF-8 bytes of a string (one shared encoder). */
export function utf8Bytes(text: string): Uint8Array {
  return utf8.encode(text);
}

/** Joins byte chunks into one array. */
export function concatBytes(chunks: readonly Uint8Array[]): Uint8Array {
  let n = 0;
  for (const c of chunks) n += c.length;
  const out = new Uint8Array(n);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

/** `<0xNN>` → NN, the way SentencePiece spells byte-fallback pieces; undefined for anything else. */
export function byteOfPiece(piece: string): number | undefined {
  const m = /^<0x([0-9A-Fa-f]{2})>$/.exec(piece);
  return m ? parseInt(m[1]!, 16) : undefined;
}
