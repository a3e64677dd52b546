import { TokenType } from './token-types.js';

/** A stretch of input text: plain text to tokenize, or the id of a special token written out in the text. */
export type Fragment = { text: string } | { id: number };

/** A token whose written form is cut out of the text before tokenization. */
export interface SpecialToken {
  text: string;
  id: number;
  /** Cut out even when the caller does not parse special tokens (user-defined tokens, as llama.cpp and HF do). */
  always?: boolean;
  /** Drop the whitespace before it (llama.cpp's LSTRIP attribute). */
  lstrip?: boolean;
  /** Drop the whitespace after it (llama.cpp's RSTRIP attribute; Phi-3's special tokens). */
  rstrip?: boolean;
}

// C's isspace: llama.cpp strips these bytes around a special token, nothing wider.
const isSpace = (c: string | undefined): boolean =>
  c === ' ' || c === '\t' || c === '\n' || c === '\v' || c === '\f' || c === '\r';

/**
 * Cuts text at the written form of special tokens (chat markers like `<|im_start|>`) so a rendered chat template
 * turns into those tokens rather than into their characters. Works as llama.cpp's `tokenizer_st_partition`: the
 * longest token first, each one cut out of every remaining text fragment.
 */
export class SpecialSplitter {
  private readonly specials: SpecialToken[];

  constructor(specials: Iterable<SpecialToken>) {
    this.specials = [...specials]
      .filter((s) => s.text.length > 0)
      .sort((a, b) => b.text.length - a.text.length || a.id - b.id);
  }

  /** `parseSpecial` false leaves the written form of control tokens as text; `always` tokens are cut out still. */
  split(text: string, parseSpecial = true): Fragment[] {
    let fragments: Fragment[] = text.length > 0 ? [{ text }] : [];
    for (const s of this.specials) {
      if (!parseSpecial && !s.always) continue;
      if (!fragments.some((f) => 'text' in f && f.text.includes(s.text))) continue;
      const next: Fragment[] = [];
      for (const f of fragments) {
        if ('id' in f) {
          next.push(f);
          continue;
        }
        let rest = f.text;
        for (let at = rest.indexOf(s.text); at >= 0; at = rest.indexOf(s.text)) {
          let left = rest.slice(0, at);
          if (s.lstrip) while (isSpace(left.at(-1))) left = left.slice(0, -1);
          if (left.length > 0) next.push({ text: left });
          next.push({ id: s.id });
          rest = rest.slice(at + s.text.length);
          if (s.rstrip) while (isSpace(rest[0])) rest = rest.slice(1);
        }
        if (rest.length > 0) next.push({ text: rest });
      }
      fragments = next;
    }
    return fragments;
  }
}

/** Which ids drop the whitespace around them when cut out (from the GGUF reader; llama.cpp sets these per model). */
export interface StripIds {
  lstrip?: readonly number[];
  rstrip?: readonly number[];
}

/** The tokens llama.cpp cuts out of text: control, unknown and user-defined ones (the last even without parsing). */
export function specialTokensOf(
  pieces: readonly string[],
  types: readonly number[],
  strip: StripIds = {},
): SpecialToken[] {
  const lstrip = new Set(strip.lstrip ?? []);
  const rstrip = new Set(strip.rstrip ?? []);
  const out: SpecialToken[] = [];
  types.forEach((t, id) => {
    if (t !== TokenType.control && t !== TokenType.userDefined && t !== TokenType.unknown) return;
    const s: SpecialToken = { text: pieces[id] ?? '', id };
    if (t === TokenType.userDefined) s.always = true;
    if (lstrip.has(id)) s.lstrip = true;
    if (rstrip.has(id)) s.rstrip = true;
    out.push(s);
  });
  return out;
}
