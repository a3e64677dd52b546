/** An incremental decoder: feed token ids, get text that only ever ends on whole UTF-8 characters. */
export interface StreamDecoder {
  /** Text completed by this token (may be empty while a multi-byte character is still arriving). */
  push(id: number): string;
  /** Whatever is left, incomplete characters as U+FFFD. */
  flush(): string;
}

/** How a stream decoder starts. */
export interface StreamDecoderOptions {
  /** Ids already in the sequence before the first pushed one (the prompt): decoding continues from them, so e.g. a SentencePiece leading space is only dropped when the text starts here. */
  prefix?: readonly number[];
  /** Emit the text of special tokens (BOS, EOS, chat markers) too. */
  keepSpecial?: boolean;
}

/**
 * Stream decoding for tokenizers that know each token's bytes: bytes are joined across tokens, and the UTF-8
 * decoder holds back a character until its last byte has come.
 */
export class ByteStreamDecoder implements StreamDecoder {
  private readonly utf8 = new TextDecoder('utf-8', { fatal: false });

  /** `bytesOf` gets whether nothing has been printed yet (`atStart`); `text` says whether this token printed something. */
  constructor(
    private readonly bytesOf: (id: number, atStart: boolean) => { bytes: Uint8Array; text: boolean },
    private atStart = true,
  ) {}

  push(id: number): string {
    const { bytes, text } = this.bytesOf(id, this.atStart);
    if (text) this.atStart = false;
    return this.utf8.decode(bytes, { stream: true });
  }

  flush(): string {
    return this.utf8.decode();
  }
}

/**
 * Stream decoding on top of a whole-sequence `decode` (for tokenizers whose decoders look at neighbours, like
 * SentencePiece's space handling): decode a short window before and after each token and emit the difference,
 * holding back while the new text ends in U+FFFD, the sign of a character cut in half.
 */
export class WindowStreamDecoder implements StreamDecoder {
  private ids: number[] = [];
  private prefixOffset = 0;
  private readOffset = 0;

  /** `prefix` ids give the first pushed token its left context; they are never emitted. */
  constructor(
    private readonly decode: (ids: readonly number[]) => string,
    prefix: readonly number[] = [],
  ) {
    // A few ids of context are enough for any decoder that looks left (spaces, byte runs).
    this.ids = prefix.slice(-4);
    this.readOffset = this.ids.length;
  }

  push(id: number): string {
    this.ids.push(id);
    const before = this.decode(this.ids.slice(this.prefixOffset, this.readOffset));
    const after = this.decode(this.ids.slice(this.prefixOffset));
    if (after.length > before.length && !after.endsWith('\uFFFD')) {
      const text = after.slice(before.length);
      this.prefixOffset = this.readOffset;
      this.readOffset = this.ids.length;
      // Keep the window short: only the ids since the last emitted text matter.
      if (this.prefixOffset > 0) {
        this.ids = this.ids.slice(this.prefixOffset);
        this.readOffset -= this.prefixOffset;
        this.prefixOffset = 0;
      }
      return text;
    }
    return '';
  }

  flush(): string {
    const before = this.decode(this.ids.slice(this.prefixOffset, this.readOffset));
    const after = this.decode(this.ids.slice(this.prefixOffset));
    this.ids = [];
    this.prefixOffset = 0;
    this.readOffset = 0;
    return after.length > before.length ? after.slice(before.length) : '';
  }
}
