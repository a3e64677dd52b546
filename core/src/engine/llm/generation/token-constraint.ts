import { JsonMatcher, type JsonNode, type LlmTokenizer } from '@nucleus/sdk/llm';

/**
 * A model's vocabulary as text, sorted, so the tokens that continue a constrained output are found by walking the
 * implicit trie of their common prefixes: a character the constraint refuses prunes every token that has it there,
 * and a 150k vocabulary is walked only as far as the output allows. Built once per model, on first use.
 */
export class TokenVocabulary {
  /** Token text by id; undefined for tokens with no text of their own (special tokens, partial UTF-8 bytes). */
  readonly texts: (string | undefined)[];
  /** Ids with text, sorted by their text. */
  readonly #sorted: number[];
  readonly #sortedTexts: string[];

  constructor(tokenizer: LlmTokenizer) {
    this.texts = new Array<string | undefined>(tokenizer.vocabSize);
    // A token's text is what it adds after another token: a leading-space marker stays part of the piece.
    const anchor = tokenizer.encode('a', { addBos: false, parseSpecial: false })[0];
    const anchorText = anchor === undefined ? '' : tokenizer.decode([anchor]);
    for (let id = 0; id < tokenizer.vocabSize; id++) {
      const whole = tokenizer.decode(anchor === undefined ? [id] : [anchor, id]);
      if (!whole.startsWith(anchorText)) continue;
      const text = whole.slice(anchorText.length);
      if (text.length === 0 || text.includes('\uFFFD')) continue;
      this.texts[id] = text;
    }
    this.#sorted = [];
    for (let id = 0; id < this.texts.length; id++) if (this.texts[id] !== undefined) this.#sorted.push(id);
    this.#sorted.sort((a, b) => (this.texts[a]! < this.texts[b]! ? -1 : this.texts[a]! > this.texts[b]! ? 1 : a - b));
    this.#sortedTexts = this.#sorted.map((id) => this.texts[id]!);
  }

  /** Marks in `allowed` every token whose whole text `matcher` accepts; the count marked. */
  markAllowed(matcher: JsonMatcher, allowed: Uint8Array): number {
    return this.#walk(0, this.#sorted.length, 0, matcher, allowed);
  }

  // Tokens [lo, hi) share their first `depth` code units, which `matcher` has accepted.
  #walk(lo: number, hi: number, depth: number, matcher: JsonMatcher, allowed: Uint8Array): number {
    const texts = this.#sortedTexts;
    let marked = 0;
    let i = lo;
    // The shortest sort first: those that end here are accepted whole.
    while (i < hi && texts[i]!.length === depth) {
      if (depth > 0) {
        allowed[this.#sorted[i]!] = 1;
        marked++;
      }
      i++;
    }
    while (i < hi) {
      const code = texts[i]!.charCodeAt(depth);
      const width = code >= 0xd800 && code <= 0xdbff && texts[i]!.length > depth + 1 ? 2 : 1;
      const prefix = texts[i]!.slice(0, depth + width);
      const end = this.#groupEnd(i, hi, prefix);
      const next = matcher.advanceChar(prefix.slice(depth));
      if (next) marked += this.#walk(i, end, depth + width, next, allowed);
      i = end;
    }
    return marked;
  }

  // The first index in [from, hi) whose text does not start with `prefix` (they are contiguous, being sorted).
  #groupEnd(from: number, hi: number, prefix: string): number {
    const texts = this.#sortedTexts;
    let lo = from + 1;
    let top = hi;
    while (lo < top) {
      const mid = (lo + top) >>> 1;
      if (texts[mid]!.startsWith(prefix)) lo = mid + 1;
      else top = mid;
    }
    return lo;
  }
}

/**
 * One sequence's constraint: the JSON value its output must be. The sampler asks whether a token may come next
 * ({@link allows}, for the token it drew) or masks the logits of every token that may not ({@link mask}); end-of-
 * sequence tokens may come only once the value is complete. State is per sequence, so it batches like the rest.
 */
export class TokenConstraint {
  #matcher: JsonMatcher;
  #allowed: Uint8Array;

  constructor(
    private readonly vocabulary: TokenVocabulary,
    grammar: JsonNode,
    private readonly eos: ReadonlySet<number>,
  ) {
    this.#matcher = JsonMatcher.start(grammar);
    this.#allowed = new Uint8Array(vocabulary.texts.length);
  }

  /** The output is a complete value that nothing may follow: the sequence ends. */
  get finished(): boolean {
    return this.#matcher.finished;
  }

  /** Whether token `id` may come next. */
  allows(id: number): boolean {
    if (this.eos.has(id)) return this.#matcher.canEnd;
    const text = this.vocabulary.texts[id];
    return text !== undefined && this.#matcher.advance(text) !== undefined;
  }

  /** Sets the logits of every token that may not come next to -Infinity; the count of tokens left. */
  mask(logits: Float32Array): number {
    const allowed = this.#allowed;
    allowed.fill(0);
    let left = this.vocabulary.markAllowed(this.#matcher, allowed);
    if (this.#matcher.canEnd)
      for (const id of this.eos)
        if (id < allowed.length && allowed[id] === 0) {
          allowed[id] = 1;
          left++;
        }
    for (let i = 0; i < logits.length; i++) if (i >= allowed.length || allowed[i] === 0) logits[i] = -Infinity;
    return left;
  }

  /** Moves past a token the sequence appended (one {@link allows} accepted). */
  accept(id: number): void {
    if (this.eos.has(id)) return;
    const next = this.#matcher.advance(this.vocabulary.texts[id] ?? '\uFFFD');
    if (!next) throw new Error(`token ${id} does not continue the constrained output`);
    this.#matcher = next;
  }
}
