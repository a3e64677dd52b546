// Random-weight GGUFs in the layouts whose RoPE llama.cpp scales: Llama and Qwen2 with YaRN, Phi-3 with fused q/k/v
// and gate/up, LongRoPE factors, an attention factor and a sliding window. Deterministic (fixed seeds), so the
// references `make-rope-refs.ts` took from llama.cpp hold for the files the tests write again.
import { SeededRandom } from '@nucleus/sdk';
import { readGguf, type GgufValue } from '@nucleus/plugin-format-gguf';
import { f32Bytes, m, writeGguf, type Meta, type RawTensor } from './gguf-writer.js';
import { testVocab } from './gguf-fixtures.js';

/** The files, by name. */
export type RopeFixture = 'llama-yarn' | 'qwen2-yarn' | 'phi3-longrope';

/** Shape of every fixture: big enough for RoPE to matter over a few hundred positions, small enough to write fast. */
export const ROPE_FIXTURE_SHAPE = {
  hidden: 64,
  layers: 2,
  heads: 4,
  kvHeads: 2,
  headDim: 16,
  feedForward: 128,
  context: 512,
} as const;

/** Phi-3's LongRoPE: the original context, past which llama.cpp takes the long factors. */
export const PHI3_ORIGINAL_CONTEXT = 256;

/** The sliding window the Phi-3 fixture declares (past every reference sequence, so llama.cpp's lack of it is moot). */
export const PHI3_SLIDING_WINDOW = 384;

/** What a fixture is written with beyond its name: the Phi-3 vocabulary's source, a different window. */
export interface RopeFixtureOptions {
  /** A GGUF whose `tokenizer.*` keys the Phi-3 fixture copies (the oracle's phi-3 vocabulary); default the test one. */
  phi3Vocabulary?: string;
  slidingWindow?: number;
  /** Keys added or replaced, and tensors left out (to make files a loader must refuse). */
  metadata?: Record<string, Meta>;
  omit?: string[];
}

/** Writes fixture `name` to `path`. */
export function writeRopeFixture(name: RopeFixture, path: string, options: RopeFixtureOptions = {}): void {
  const s = ROPE_FIXTURE_SHAPE;
  const arch = name === 'llama-yarn' ? 'llama' : name === 'qwen2-yarn' ? 'qwen2' : 'phi3';
  const rng = new SeededRandom(name === 'llama-yarn' ? 101 : name === 'qwen2-yarn' ? 202 : 303);
  const tokenizer =
    name === 'phi3-longrope' && options.phi3Vocabulary ? copiedTokenizer(options.phi3Vocabulary) : testTokenizer();
  const vocab = (tokenizer['tokenizer.ggml.tokens'] as Extract<Meta, { t: 'arr' }>).v.length;
  const H = s.hidden;
  const q = s.heads * s.headDim;
  const kv = s.kvHeads * s.headDim;
  const tensors: RawTensor[] = [];
  // ggml dims: [in, out].
  // `gain` > 1 on the matrices that write the residual and the logits keeps greedy choices clear of near-ties.
  const matrix = (tensorName: string, out: number, inDim: number, gain = 1): void => {
    tensors.push({
      name: tensorName,
      dims: [inDim, out],
      type: 0,
      data: f32Bytes(rng.normals(out * inDim, gain / Math.sqrt(inDim))),
    });
  };
  const vector = (tensorName: string, values: Float32Array): void => {
    tensors.push({ name: tensorName, dims: [values.length], type: 0, data: f32Bytes(values) });
  };
  const norm = (tensorName: string): void =>
    vector(
      tensorName,
      Float32Array.from(rng.normals(H, 0.1), (v) => 1 + v),
    );
  tensors.push({ name: 'token_embd.weight', dims: [H, vocab], type: 0, data: f32Bytes(rng.normals(vocab * H, 1)) });
  for (let l = 0; l < s.layers; l++) {
    const p = `blk.${l}`;
    norm(`${p}.attn_norm.weight`);
    if (arch === 'phi3') {
      matrix(`${p}.attn_qkv.weight`, q + 2 * kv, H);
    } else {
      matrix(`${p}.attn_q.weight`, q, H);
      matrix(`${p}.attn_k.weight`, kv, H);
      matrix(`${p}.attn_v.weight`, kv, H);
    }
    if (arch === 'qwen2') {
      vector(`${p}.attn_q.bias`, rng.normals(q, 0.1));
      vector(`${p}.attn_k.bias`, rng.normals(kv, 0.1));
      vector(`${p}.attn_v.bias`, rng.normals(kv, 0.1));
    }
    matrix(`${p}.attn_output.weight`, H, q, 3);
    norm(`${p}.ffn_norm.weight`);
    if (arch === 'phi3') {
      matrix(`${p}.ffn_up.weight`, 2 * s.feedForward, H);
    } else {
      matrix(`${p}.ffn_gate.weight`, s.feedForward, H);
      matrix(`${p}.ffn_up.weight`, s.feedForward, H);
    }
    matrix(`${p}.ffn_down.weight`, H, s.feedForward, 3);
  }
  norm('output_norm.weight');
  // Untied (a random tied model repeats one token; the oracle's qwen2 file covers the tied output).
  matrix('output.weight', vocab, H, 4);

  const key = (k: string): string => `${arch}.${k}`;
  const metadata: Record<string, Meta> = {
    'general.architecture': m.str(arch),
    'general.name': m.str(`${name}-tiny`),
    [key('context_length')]: m.u32(s.context),
    [key('embedding_length')]: m.u32(H),
    [key('block_count')]: m.u32(s.layers),
    [key('feed_forward_length')]: m.u32(s.feedForward),
    [key('attention.head_count')]: m.u32(s.heads),
    [key('attention.head_count_kv')]: m.u32(s.kvHeads),
    [key('attention.layer_norm_rms_epsilon')]: m.f32(1e-5),
    [key('rope.dimension_count')]: m.u32(s.headDim),
    [key('rope.freq_base')]: m.f32(arch === 'qwen2' ? 1e6 : 10000),
  };
  if (arch === 'phi3') {
    // LongRoPE as convert_hf_to_gguf writes Phi-3.5: factors per pair, the attention factor sqrt(1 + ln(s)/ln(orig)).
    const pairs = s.headDim / 2;
    vector(
      'rope_factors_long.weight',
      Float32Array.from({ length: pairs }, (_, i) => 1 + (7 * i) / (pairs - 1)),
    );
    vector(
      'rope_factors_short.weight',
      Float32Array.from({ length: pairs }, (_, i) => 1 + (0.5 * i) / (pairs - 1)),
    );
    const scale = s.context / PHI3_ORIGINAL_CONTEXT;
    metadata[key('rope.scaling.attn_factor')] = m.f32(Math.sqrt(1 + Math.log(scale) / Math.log(PHI3_ORIGINAL_CONTEXT)));
    metadata[key('rope.scaling.original_context_length')] = m.u32(PHI3_ORIGINAL_CONTEXT);
    metadata[key('attention.sliding_window')] = m.u32(options.slidingWindow ?? PHI3_SLIDING_WINDOW);
  } else {
    // YaRN from 128 to 512 positions; Qwen2 also states llama.cpp's default betas, to read them.
    metadata[key('rope.scaling.type')] = m.str('yarn');
    metadata[key('rope.scaling.factor')] = m.f32(4);
    metadata[key('rope.scaling.original_context_length')] = m.u32(128);
    if (arch === 'qwen2') {
      metadata[key('rope.scaling.yarn_beta_fast')] = m.f32(32);
      metadata[key('rope.scaling.yarn_beta_slow')] = m.f32(1);
    }
  }
  const kept = tensors.filter((t) => !options.omit?.includes(t.name));
  writeGguf(path, { ...metadata, ...tokenizer, ...options.metadata }, kept, { alignment: 32 });
}

// The SentencePiece test vocabulary of `gguf-fixtures`, with a chat template.
function testTokenizer(): Record<string, Meta> {
  const v = testVocab();
  return {
    'tokenizer.ggml.model': m.str('llama'),
    'tokenizer.ggml.tokens': m.strs(v.pieces),
    'tokenizer.ggml.scores': m.f32s(v.scores),
    'tokenizer.ggml.token_type': m.i32s(v.types),
    'tokenizer.ggml.bos_token_id': m.u32(1),
    'tokenizer.ggml.eos_token_id': m.u32(2),
    'tokenizer.ggml.unknown_token_id': m.u32(0),
  };
}

// Every `tokenizer.*` key of another GGUF, typed as it stores them.
function copiedTokenizer(from: string): Record<string, Meta> {
  const out: Record<string, Meta> = {};
  for (const [k, value] of readGguf(from).metadata) {
    if (k.startsWith('tokenizer.')) out[k] = meta(k, value);
  }
  return out;
}

function meta(k: string, value: GgufValue): Meta {
  if (typeof value === 'string') return m.str(value);
  if (typeof value === 'boolean') return m.bool(value);
  if (typeof value === 'number' || typeof value === 'bigint') return m.u32(Number(value));
  if (k === 'tokenizer.ggml.tokens' || k === 'tokenizer.ggml.merges') return m.strs(value as string[]);
  if (k === 'tokenizer.ggml.scores') return m.f32s(value as number[]);
  return m.i32s(value as number[]);
}
