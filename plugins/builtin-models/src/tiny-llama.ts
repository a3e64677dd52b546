import { createHash } from 'node:crypto';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { SeededRandom } from '@nucleus/sdk';
import {
  BYTE_TO_CHAR,
  buildLlamaGraph,
  CONTRIB_IO,
  ensureGeneratedGraph,
  GPT2_SPLIT,
  LLAMA_GRAPH_REVISION,
  toByteLevel,
  type LlamaArchitecture,
  type LlamaWeights,
  type LoadedLlm,
} from '@nucleus/sdk/llm';

/** The folder name of the tiny-random Llama under the model cache. */
export const TINY_LLAMA_NAME = 'tiny-llama';

/** Bumped whenever the generated files change, so cached copies are rebuilt. */
export const TINY_LLAMA_REVISION = 1;

/** Special tokens of the tiny Llama's vocabulary, after the 256 bytes and the merges. */
export const TINY_LLAMA_SPECIAL_TOKENS = [
  '<|begin_of_text|>',
  '<|end_of_text|>',
  '<|im_start|>',
  '<|im_end|>',
] as const;

const MERGES = 40;

/** Architecture of the tiny-random Llama: GQA (4 query heads over 2 kv heads), head dim 16, half-split RoPE like HF. */
export const TINY_LLAMA_ARCH: LlamaArchitecture = {
  vocabSize: 256 + MERGES + TINY_LLAMA_SPECIAL_TOKENS.length,
  hiddenSize: 64,
  intermediateSize: 128,
  numLayers: 2,
  numHeads: 4,
  numKvHeads: 2,
  headDim: 16,
  rmsNormEps: 1e-6,
  ropeTheta: 10000,
  maxPositions: 256,
};

/** ChatML, the tiny Llama's chat template. */
export const TINY_LLAMA_CHAT_TEMPLATE =
  "{{ bos_token }}{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}" +
  "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

// The merges are learned from this text, so the vocabulary has real multi-byte pieces (" the", "ing" …).
const CORPUS =
  'Once upon a time there was a little girl named Lily. She liked to play in the park with her friends. ' +
  'One day the sun was shining and the birds were singing. Lily and her mom went to the park to play on the swing. ' +
  'The little dog was running and jumping in the grass. They were happy and they played all day. ' +
  'Café, naïve, héllo — the end. 🙂';

/** Seeded random weights for the tiny Llama (same bytes on every machine). */
export function tinyLlamaWeights(seed = 7): LlamaWeights {
  const a = TINY_LLAMA_ARCH;
  const rng = new SeededRandom(seed);
  const H = a.hiddenSize;
  const q = a.numHeads * a.headDim;
  const kv = a.numKvHeads * a.headDim;
  const matrix = (out: number, inDim: number): Float32Array => rng.normals(out * inDim, 1 / Math.sqrt(inDim));
  const norm = (n: number): Float32Array => Float32Array.from(rng.normals(n, 0.1), (v) => 1 + v);
  return {
    tokenEmbedding: rng.normals(a.vocabSize * H, 1),
    layers: Array.from({ length: a.numLayers }, () => ({
      attnNorm: norm(H),
      q: matrix(q, H),
      k: matrix(kv, H),
      v: matrix(kv, H),
      o: matrix(H, q),
      ffnNorm: norm(H),
      gate: matrix(a.intermediateSize, H),
      up: matrix(a.intermediateSize, H),
      down: matrix(H, a.intermediateSize),
    })),
    finalNorm: norm(H),
    lmHead: matrix(a.vocabSize, H),
  };
}

/** A byte-level BPE tokenizer.json (GPT-2 bytes, merges learned from a fixed text) and its tokenizer_config.json. */
export function tinyLlamaTokenizer(): {
  tokenizerJson: Record<string, unknown>;
  tokenizerConfig: Record<string, unknown>;
} {
  const merges = learnMerges(CORPUS, MERGES);
  const vocab: Record<string, number> = {};
  BYTE_TO_CHAR.forEach((c, i) => (vocab[c] = i));
  merges.forEach(([l, r], i) => (vocab[l + r] = 256 + i));
  // The ids in TINY_LLAMA_ARCH assume every merge made a new piece.
  if (Object.keys(vocab).length !== 256 + MERGES)
    throw new Error('tiny Llama tokenizer: merges did not give distinct pieces');
  const specialBase = 256 + merges.length;
  const added = TINY_LLAMA_SPECIAL_TOKENS.map((content, i) => ({
    id: specialBase + i,
    content,
    single_word: false,
    lstrip: false,
    rstrip: false,
    normalized: false,
    special: true,
  }));
  const tokenizerJson = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: added,
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: '<|begin_of_text|>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
      pair: [
        { SpecialToken: { id: '<|begin_of_text|>', type_id: 0 } },
        { Sequence: { id: 'A', type_id: 0 } },
        { SpecialToken: { id: '<|begin_of_text|>', type_id: 1 } },
        { Sequence: { id: 'B', type_id: 1 } },
      ],
      special_tokens: {
        '<|begin_of_text|>': { id: '<|begin_of_text|>', ids: [specialBase], tokens: ['<|begin_of_text|>'] },
      },
    },
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab,
      merges: merges.map(([l, r]) => `${l} ${r}`),
    },
  };
  const tokenizerConfig = {
    tokenizer_class: 'PreTrainedTokenizerFast',
    bos_token: '<|begin_of_text|>',
    eos_token: '<|im_end|>',
    pad_token: '<|end_of_text|>',
    add_bos_token: true,
    add_eos_token: false,
    clean_up_tokenization_spaces: false,
    model_max_length: TINY_LLAMA_ARCH.maxPositions,
    chat_template: TINY_LLAMA_CHAT_TEMPLATE,
    added_tokens_decoder: Object.fromEntries(added.map(({ id, ...rest }) => [String(id), rest])),
  };
  return { tokenizerJson, tokenizerConfig };
}

/** The HF `config.json` of the tiny Llama. */
export function tinyLlamaConfigJson(): Record<string, unknown> {
  const a = TINY_LLAMA_ARCH;
  const specialBase = 256 + MERGES;
  return {
    architectures: ['LlamaForCausalLM'],
    model_type: 'llama',
    vocab_size: a.vocabSize,
    hidden_size: a.hiddenSize,
    intermediate_size: a.intermediateSize,
    num_hidden_layers: a.numLayers,
    num_attention_heads: a.numHeads,
    num_key_value_heads: a.numKvHeads,
    head_dim: a.headDim,
    hidden_act: 'silu',
    max_position_embeddings: a.maxPositions,
    rms_norm_eps: a.rmsNormEps,
    rope_theta: a.ropeTheta,
    rope_scaling: null,
    attention_bias: false,
    mlp_bias: false,
    tie_word_embeddings: false,
    bos_token_id: specialBase,
    eos_token_id: [specialBase + 1, specialBase + 3],
    pad_token_id: specialBase + 1,
    torch_dtype: 'float32',
    use_cache: true,
  };
}

/** Every file of the tiny Llama folder, by name (model.onnx as bytes, the rest as JSON text). */
export function buildTinyLlamaFiles(): Map<string, Uint8Array | string> {
  const model = buildLlamaGraph(tinyLlamaWeights(), TINY_LLAMA_ARCH, {
    ropeLayout: 'half',
    style: 'generic',
    name: 'tiny_llama',
  });
  const { tokenizerJson, tokenizerConfig } = tinyLlamaTokenizer();
  const config = tinyLlamaConfigJson();
  const json = (v: unknown): string => `${JSON.stringify(v, null, 2)}\n`;
  return new Map<string, Uint8Array | string>([
    ['config.json', json(config)],
    [
      'generation_config.json',
      json({ bos_token_id: config.bos_token_id, eos_token_id: config.eos_token_id, pad_token_id: config.pad_token_id }),
    ],
    ['tokenizer.json', json(tokenizerJson)],
    ['tokenizer_config.json', json(tokenizerConfig)],
    [
      'special_tokens_map.json',
      json({
        bos_token: tokenizerConfig.bos_token,
        eos_token: tokenizerConfig.eos_token,
        pad_token: tokenizerConfig.pad_token,
      }),
    ],
    ['model.onnx', model.encode()],
  ]);
}

/**
 * Writes the tiny-random Llama as a Hugging Face / Optimum export folder, `<cacheDir>/tiny-llama/<revision>`, unless a
 * complete copy of this revision is already there; returns the folder. The folder appears by rename, so concurrent
 * callers never see half of it.
 */
export async function ensureTinyLlama(cacheDir: string): Promise<string> {
  const dir = join(cacheDir, TINY_LLAMA_NAME, String(TINY_LLAMA_REVISION));
  if (await isComplete(dir)) return dir;
  const files = buildTinyLlamaFiles();
  const tmp = `${dir}.tmp-${process.pid}-${Math.random().toString(36).slice(2)}`;
  await mkdir(tmp, { recursive: true });
  for (const [name, content] of files) await writeFile(join(tmp, name), content);
  await writeFile(
    join(tmp, TINY_LLAMA_MARKER),
    json({ revision: TINY_LLAMA_REVISION, sha256: sha256(files.get('model.onnx') as Uint8Array) }),
  );
  try {
    await rename(tmp, dir);
  } catch {
    // Another writer won the race (or a stale copy is in the way): keep theirs if complete, else replace it.
    if (!(await isComplete(dir))) {
      await rm(dir, { recursive: true, force: true });
      await rename(tmp, dir);
    }
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
  return dir;
}

/** The file that marks a complete tiny Llama folder (and tells the `builtin` format it is one). */
export const TINY_LLAMA_MARKER = 'nucleus-builtin.json';

async function isComplete(dir: string): Promise<boolean> {
  try {
    const marker = JSON.parse(await readFile(join(dir, TINY_LLAMA_MARKER), 'utf8')) as {
      revision?: number;
      sha256?: string;
    };
    return marker.revision === TINY_LLAMA_REVISION && marker.sha256 === sha256(await readFile(join(dir, 'model.onnx')));
  } catch {
    return false;
  }
}

function json(v: unknown): string {
  return `${JSON.stringify(v, null, 2)}\n`;
}

function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

// Plain BPE training: most frequent adjacent pair first, ties broken by the pair's text, so the result is fixed.
function learnMerges(text: string, count: number): [string, string][] {
  const words = new Map<string, number>();
  for (const m of text.matchAll(GPT2_SPLIT)) {
    const w = toByteLevel(m[0]);
    words.set(w, (words.get(w) ?? 0) + 1);
  }
  const splits = [...words].map(([w, n]) => ({ parts: [...w], n }));
  const merges: [string, string][] = [];
  while (merges.length < count) {
    const pairs = new Map<string, number>();
    for (const { parts, n } of splits) {
      for (let i = 0; i + 1 < parts.length; i++) {
        const key = `${parts[i]} ${parts[i + 1]}`;
        pairs.set(key, (pairs.get(key) ?? 0) + n);
      }
    }
    let best: string | undefined;
    let bestCount = 0;
    for (const [key, n] of pairs) {
      if (n > bestCount || (n === bestCount && best !== undefined && key < best)) {
        best = key;
        bestCount = n;
      }
    }
    if (best === undefined) break;
    const [l, r] = best.split(' ') as [string, string];
    merges.push([l, r]);
    for (const s of splits) {
      const next: string[] = [];
      for (let i = 0; i < s.parts.length; i++) {
        if (i + 1 < s.parts.length && s.parts[i] === l && s.parts[i + 1] === r) {
          next.push(l + r);
          i++;
        } else next.push(s.parts[i]!);
      }
      s.parts = next;
    }
  }
  return merges;
}

/**
 * The built-in tiny Llama as a contrib-style graph: the same weights as the folder's generic graph (which is what an
 * Optimum export would ship), built with ORT's contrib ops into the model cache. `loaded` is the folder, loaded.
 */
export async function tinyLlamaContrib(loaded: LoadedLlm, cacheDir: string): Promise<LoadedLlm> {
  const { path } = await ensureGeneratedGraph(
    cacheDir,
    'builtin',
    `tiny-llama-r${TINY_LLAMA_REVISION}-contrib-r${LLAMA_GRAPH_REVISION}`,
    () =>
      buildLlamaGraph(tinyLlamaWeights(), TINY_LLAMA_ARCH, {
        ropeLayout: 'half',
        style: 'contrib',
        name: 'tiny_llama',
      }),
  );
  return {
    ...loaded,
    onnxPath: path,
    config: { ...loaded.config, graphStyle: 'contrib', contribIo: { ...CONTRIB_IO } },
  };
}
