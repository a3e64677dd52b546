// GGUF byte-level BPE vocabularies two ways: the SDK's own BPE (Gpt2BpeTokenizer) and a tokenizer.json built from
// the same vocabulary for @huggingface/tokenizers. Both must first give llama.cpp's ids; then construction (done in
// the main thread and again in every worker) and encoding are timed.
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Tokenizer } from '@huggingface/tokenizers';
import { ggufTokenizer, readGguf } from '@nucleus/plugin-format-gguf';
import { createTokenizer, SpecialSplitter, specialTokensOf, type TokenizerSpec } from '@nucleus/sdk/llm';
import { machineInfo } from './machine.js';
import { record, type ResultTable } from './report.js';
import { timeLoop } from './stats.js';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const ORACLE = fileURLToPath(new URL('../../../shared/models/llm-oracle/', import.meta.url));
const PARAGRAPH =
  'The old lighthouse keeper climbed the spiral stairs every evening, counting all one hundred and twelve steps aloud. At the top he trimmed the wick, polished the great brass lens, and watched the fishing boats return to the harbor while the gulls circled overhead and the sea slowly turned from silver to violet.';

type BpeSpec = Extract<TokenizerSpec, { kind: 'gpt2-bpe' }>;
type Encoder = { encode(text: string, options?: { addBos?: boolean; parseSpecial?: boolean }): number[] };

// llama.cpp's patterns, as a tokenizer.json Split would carry them (the library maps \s to White_Space itself).
const CONTRACTIONS = "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])";
const SPLIT: Record<string, string> = {
  'llama-bpe': String.raw`${CONTRACTIONS}|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`,
  qwen2: String.raw`${CONTRACTIONS}|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`,
};

/** The GGUF vocabulary as a tokenizer.json; special tokens stay with the SDK's splitter (llama.cpp's rules). */
function tokenizerJson(spec: BpeSpec): Record<string, unknown> {
  const vocab: Record<string, number> = {};
  spec.pieces.forEach((p, id) => {
    vocab[p] = id;
  });
  return {
    version: '1.0',
    added_tokens: [],
    normalizer: null,
    post_processor: null,
    decoder: { type: 'ByteLevel' },
    pre_tokenizer: {
      type: 'Sequence',
      pretokenizers: [
        { type: 'Split', pattern: { Regex: SPLIT[spec.pre!] }, behavior: 'Isolated', invert: false },
        { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false },
      ],
    },
    model: { type: 'BPE', vocab, merges: spec.merges, ignore_merges: spec.pre === 'llama-bpe', unk_token: null },
  };
}

function hfEncoder(spec: BpeSpec): Encoder {
  const hf = new Tokenizer(tokenizerJson(spec), {});
  const splitter = new SpecialSplitter(specialTokensOf(spec.pieces, spec.types));
  return {
    encode(text, options = {}) {
      const out: number[] = options.addBos && spec.addBos && spec.bosTokenId !== undefined ? [spec.bosTokenId] : [];
      for (const f of splitter.split(text, options.parseSpecial ?? true)) {
        if ('id' in f) out.push(f.id);
        else out.push(...hf.encode(f.text, { add_special_tokens: false }).ids);
      }
      return out;
    },
  };
}

function vectors(name: string): { text: string; ids: number[] }[] {
  const dir = `${ORACLE}tokenizer-tests/ggml-vocab-${name}.gguf`;
  const inp = readFileSync(`${dir}.inp`, 'utf8').split('\n__ggml_vocab_test__\n').slice(0, -1);
  const out = readFileSync(`${dir}.out`, 'utf8').split('\n');
  return inp.map((text, i) => ({ text, ids: out[i]!.trim() === '' ? [] : out[i]!.trim().split(' ').map(Number) }));
}

/** Runs the comparison on the Llama 3 and Qwen2 vocabularies of the oracle models. */
export async function tokenizersSuite(): Promise<string> {
  const notes: string[] = [];
  const tables: ResultTable[] = [];
  if (!existsSync(`${ORACLE}MANIFEST.json`)) {
    notes.push(`skipped: ${ORACLE} is absent`);
    return record('tokenizers', machineInfo(), tables, notes);
  }
  for (const [name, file] of [
    ['llama-bpe', 'llama3-tiny-F16.gguf'],
    ['qwen2', 'qwen2-tiny-F16.gguf'],
  ] as const) {
    const problems: string[] = [];
    const spec = ggufTokenizer(readGguf(`${ORACLE}${file}`).metadata, 0, problems).spec as BpeSpec;
    if (problems.length) throw new Error(problems.join('; '));
    const ours = createTokenizer(spec);
    const hf = hfEncoder(spec);
    const cases = vectors(name);
    for (const [label, t] of [
      ['Gpt2BpeTokenizer', ours],
      ['tokenizer.json', hf],
    ] as const) {
      const wrong = cases.filter(
        (c) => JSON.stringify(t.encode(c.text, { parseSpecial: false })) !== JSON.stringify(c.ids),
      );
      notes.push(
        `${name}: ${label} matches llama.cpp on ${cases.length - wrong.length} of ${cases.length} test vectors`,
      );
    }
    const size = `${spec.pieces.length} tokens, ${spec.merges.length} merges`;
    const build = async (make: () => unknown) => timeLoop(async () => make(), SECONDS, 1);
    const buildOurs = await build(() => createTokenizer(spec));
    const buildHf = await build(() => hfEncoder(spec));
    tables.push({
      title: `${name} (${size}): construction`,
      unit: 'builds',
      rows: [
        { label: 'Gpt2BpeTokenizer from the spec', stats: buildOurs, ratio: 1 },
        {
          label: 'tokenizer.json built + @huggingface/tokenizers',
          stats: buildHf,
          ratio: buildHf.throughput / buildOurs.throughput,
        },
      ],
    });
    for (const [title, op] of [
      ['encode the paragraph prompt', (t: Encoder) => t.encode(PARAGRAPH, { addBos: true })],
      ['encode the 46 test vectors', (t: Encoder) => cases.map((c) => t.encode(c.text, { parseSpecial: false }))],
    ] as const) {
      const a = await timeLoop(async () => op(ours), SECONDS);
      const b = await timeLoop(async () => op(hf), SECONDS);
      tables.push({
        title: `${name}: ${title}`,
        unit: 'runs',
        rows: [
          { label: 'Gpt2BpeTokenizer', stats: a, ratio: 1 },
          { label: 'tokenizer.json + @huggingface/tokenizers', stats: b, ratio: b.throughput / a.throughput },
        ],
      });
    }
  }
  notes.push('Both sides cut special tokens with the SDK splitter; only pre-tokenization and BPE differ.');
  return record('tokenizers', machineInfo(), tables, notes);
}
