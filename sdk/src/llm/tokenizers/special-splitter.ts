/** A stretch of input text: plain text to tokenize, or the id of a special token written out in the text. */
export type Fragment = { text: string } | { id: number };

/**
 * Cuts text at the written form of special tokens (chat markers like `<|im_start|>`), longest match first, so a
 * rendered chat template turns into those tokens rather than into their characters.
 */
export class SpecialSplitter {
  private readonly specials: { text: string; id: number }[];
  private readonly firstChars: Set<string>;

  constructor(specials: Iterable<{ text: string; id: number }>) {
    this.specials = [...specials].filter((s) => s.text.length > 0).sort((a, b) => b.text.length - a.text.length);
    this.firstChars = new Set(this.specials.map((s) => s.text[0]!));
  }

  split(text: string): Fragment[] {
    if (this.specials.length === 0) return text.length > 0 ? [{ text }] : [];
    const out: Fragment[] = [];
    let start = 0;
    let i = 0;
    while (i < text.length) {
      const hit = this.firstChars.has(text[i]!) ? this.specials.find((s) => text.startsWith(s.text, i)) : undefined;
      if (hit) {
        if (i > start) out.push({ text: text.slice(start, i) });
        out.push({ id: hit.id });
        i += hit.text.length;
        start = i;
      } else i++;
    }
    if (start < text.length) out.push({ text: text.slice(start) });
    return out;
  }
}
