/** How a byte-level BPE vocabulary cuts text into words before merging, and the defaults llama.cpp ties to it. */
export interface BpePreTokenizer {
  /** Applied in turn: each cuts every word so far into its matches and the text between them. */
  regexes: readonly RegExp[];
  /** A word that is itself a piece is taken whole, before any merge (Llama 3's `ignore_merges`). */
  ignoreMerges: boolean;
  /** Whether BOS goes first when the GGUF has no `tokenizer.ggml.add_bos_token`. */
  addBos: boolean;
}

// llama.cpp's patterns (llama-vocab.cpp), with `\s` as Unicode White_Space like llama.cpp's tables: JS's `\s`
// differs (it has U+FEFF, lacks U+0085). Contractions are spelled out: Node 20 has no `(?i:…)` groups.
const regex = (source: string): RegExp =>
  new RegExp(source.replaceAll('\\s', '\\p{White_Space}').replaceAll('\\S', '\\P{White_Space}'), 'gu');

const CONTRACTIONS = "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])";
const GPT2 = regex(String.raw`'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)`);

const llama3: BpePreTokenizer = {
  regexes: [
    regex(
      String.raw`${CONTRACTIONS}|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`,
    ),
  ],
  ignoreMerges: true,
  addBos: true,
};
const qwen2: BpePreTokenizer = {
  regexes: [
    regex(
      String.raw`${CONTRACTIONS}|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`,
    ),
  ],
  ignoreMerges: false,
  addBos: false,
};
const gpt2: BpePreTokenizer = { regexes: [GPT2], ignoreMerges: false, addBos: false };
// What llama.cpp uses for `default` (and for a vocabulary without `tokenizer.ggml.pre`).
const fallback: BpePreTokenizer = {
  regexes: [regex(String.raw`[\p{P}\$\+<=>\^~\|]+`), GPT2, regex(String.raw`\p{N}+`), regex('[0-9][0-9][0-9]')],
  ignoreMerges: false,
  addBos: false,
};

/** Pre-tokenizers by GGUF `tokenizer.ggml.pre`, under the names llama.cpp accepts for them. */
export const BPE_PRE_TOKENIZERS: Readonly<Record<string, BpePreTokenizer>> = {
  default: fallback,
  llama3,
  'llama-v3': llama3,
  'llama-bpe': llama3,
  qwen2,
  'deepseek-r1-qwen': qwen2,
  'gpt-2': gpt2,
  'phi-2': gpt2,
};

/** `text` cut into words by `regexes` in turn; text between matches stays a word of its own, as in llama.cpp. */
export function splitWords(text: string, regexes: readonly RegExp[]): string[] {
  let words = [text];
  for (const re of regexes) {
    const next: string[] = [];
    for (const w of words) {
      let last = 0;
      for (const m of w.matchAll(re)) {
        if (m[0].length === 0) continue;
        if (m.index > last) next.push(w.slice(last, m.index));
        next.push(m[0]);
        last = m.index + m[0].length;
      }
      if (last < w.length) next.push(w.slice(last));
    }
    words = next;
  }
  return words;
}
