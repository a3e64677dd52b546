/** Special ids of the {@link ByteTokenizer}; bytes follow them. */
export const BYTE_TOKENIZER_SPECIALS = { pad: 0, cls: 1, sep: 2, unk: 3 } as const;

const OFFSET = 4;

/**
 * UTF-8 bytes as token ids (`4 + byte`), framed as `[CLS] … [SEP]`: the tokenizer of built-in encoders that are
 * generated with random weights and ship no vocabulary of their own. Any vocabulary of at least 260 ids takes it.
 */
export class ByteTokenizer {
  static readonly minVocabSize = OFFSET + 256;

  /** `[CLS]`, the bytes of `text`, `[SEP]`. */
  encode(text: string): number[] {
    const bytes = new TextEncoder().encode(text);
    const ids = new Array<number>(bytes.length + 2);
    ids[0] = BYTE_TOKENIZER_SPECIALS.cls;
    for (let i = 0; i < bytes.length; i++) ids[i + 1] = OFFSET + bytes[i]!;
    ids[bytes.length + 1] = BYTE_TOKENIZER_SPECIALS.sep;
    return ids;
  }
}
