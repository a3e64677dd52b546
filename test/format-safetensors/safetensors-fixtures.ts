// Writes Hugging Face safetensors checkpoint folders for the tests: from the oracle GGUFs (the same weights in
// transformers' layout, with a tokenizer.json built from the GGUF's vocabulary), and from the built-in tiny Llama.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  inspectGguf,
  readTensorBytes,
  readTensorF32,
  type GgufLlama,
  type GgufTensorInfo,
} from '@nucleus/plugin-format-gguf';
import { writeSafetensors, type SafetensorsEntry } from '@nucleus/plugin-format-safetensors';
import { tinyLlamaConfigJson, tinyLlamaTokenizer, tinyLlamaWeights } from '@nucleus/plugin-builtin-models';
import type { TokenizerSpec } from '@nucleus/sdk/llm';

/** GGUF token types (llama.cpp's `llama_token_type`). */
const NORMAL = 1;
const CONTROL = 3;
const USER_DEFINED = 4;

/** transformers' config.json `architectures` for a GGUF `general.architecture`. */
const HF_ARCHITECTURE: Record<string, { architectures: string; modelType: string }> = {
  llama: { architectures: 'LlamaForCausalLM', modelType: 'llama' },
  qwen2: { architectures: 'Qwen2ForCausalLM', modelType: 'qwen2' },
};

/** The split patterns of the Hugging Face tokenizer.json of each GGUF pre-tokenizer (as the Hub's files spell them). */
const PRE_TOKENIZER: Record<string, { pattern: string; ignoreMerges: boolean; nfc: boolean }> = {
  'llama-bpe': {
    pattern: String.raw`(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`,
    ignoreMerges: true,
    nfc: false,
  },
  qwen2: {
    pattern: String.raw`(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`,
    ignoreMerges: false,
    nfc: true,
  },
};

/** Options of {@link writeOracleCheckpoint}. */
export interface OracleCheckpointOptions {
  /** Split the weights into two shards with a `model.safetensors.index.json`. */
  shards?: boolean;
}

/**
 * Writes the oracle GGUF `ggufPath` as a transformers checkpoint folder in `dir`: config.json, model.safetensors (or
 * two shards and their index), tokenizer.json built from the GGUF's vocabulary, merges and pre-tokenizer, and
 * tokenizer_config.json with its chat template. Float16 matrices are copied as F16 (the same bits); the Q8_0 token
 * embedding is written dequantized as F32 (exact). For `llama`, Wq and Wk are un-permuted: llama.cpp's converter
 * interleaves the two halves of each head's rows for its adjacent-pair RoPE, and this undoes that.
 */
export function writeOracleCheckpoint(ggufPath: string, dir: string, options: OracleCheckpointOptions = {}): GgufLlama {
  const model = inspectGguf(ggufPath);
  const hf = HF_ARCHITECTURE[model.architecture];
  if (!hf) throw new Error(`no transformers architecture for ${model.architecture}`);
  const { file, arch: a } = model;
  const byName = new Map(file.tensors.map((t) => [t.name, t]));
  const tensor = (name: string): GgufTensorInfo => {
    const t = byName.get(name);
    if (!t) throw new Error(`${ggufPath} has no ${name}`);
    return t;
  };
  // GGUF dims are innermost first: [in, out] is transformers' [out, in].
  const entry = (
    hfName: string,
    ggufName: string,
    rows?: (bytes: Uint8Array, t: GgufTensorInfo) => Uint8Array,
  ): SafetensorsEntry => {
    const t = tensor(ggufName);
    const shape = [...t.dims].reverse();
    const type = { 0: 'F32', 1: 'F16' }[t.type as 0 | 1];
    if (type) {
      const bytes = readTensorBytes(file, t);
      return { name: hfName, dtype: type, shape, data: rows ? rows(bytes, t) : bytes };
    }
    return { name: hfName, dtype: 'F32', shape, data: new Uint8Array(readTensorF32(file, t).buffer) };
  };
  const unpermute =
    (heads: number) =>
    (bytes: Uint8Array, t: GgufTensorInfo): Uint8Array =>
      model.ropeLayout === 'interleaved' ? unpermuteRows(bytes, t.dims[1]!, heads, a.headDim) : bytes;
  const layer = (l: number): SafetensorsEntry[] => {
    const p = `model.layers.${l}`;
    const b = `blk.${l}`;
    const out = [
      entry(`${p}.input_layernorm.weight`, `${b}.attn_norm.weight`),
      entry(`${p}.self_attn.q_proj.weight`, `${b}.attn_q.weight`, unpermute(a.numHeads)),
      entry(`${p}.self_attn.k_proj.weight`, `${b}.attn_k.weight`, unpermute(a.numKvHeads)),
      entry(`${p}.self_attn.v_proj.weight`, `${b}.attn_v.weight`),
      entry(`${p}.self_attn.o_proj.weight`, `${b}.attn_output.weight`),
      entry(`${p}.post_attention_layernorm.weight`, `${b}.ffn_norm.weight`),
      entry(`${p}.mlp.gate_proj.weight`, `${b}.ffn_gate.weight`),
      entry(`${p}.mlp.up_proj.weight`, `${b}.ffn_up.weight`),
      entry(`${p}.mlp.down_proj.weight`, `${b}.ffn_down.weight`),
    ];
    for (const part of ['q', 'k', 'v']) {
      if (byName.has(`${b}.attn_${part}.bias`))
        out.push(entry(`${p}.self_attn.${part}_proj.bias`, `${b}.attn_${part}.bias`));
    }
    return out;
  };
  const head = [entry('model.embed_tokens.weight', 'token_embd.weight')];
  const layers = Array.from({ length: a.numLayers }, (_, l) => layer(l));
  const tail = [entry('model.norm.weight', 'output_norm.weight')];
  if (byName.has('output.weight')) tail.push(entry('lm_head.weight', 'output.weight'));

  mkdirSync(dir, { recursive: true });
  if (options.shards) {
    const first = [...head, ...layers[0]!];
    const second = [...layers.slice(1).flat(), ...tail];
    const names = ['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors'];
    writeSafetensors(join(dir, names[0]!), first, { format: 'pt' });
    writeSafetensors(join(dir, names[1]!), second, { format: 'pt' });
    const weightMap = Object.fromEntries([
      ...first.map((e) => [e.name, names[0]]),
      ...second.map((e) => [e.name, names[1]]),
    ]);
    const totalSize = [...first, ...second].reduce((n, e) => n + e.data.byteLength, 0);
    writeJson(join(dir, 'model.safetensors.index.json'), {
      metadata: { total_size: totalSize },
      weight_map: weightMap,
    });
  } else {
    writeSafetensors(join(dir, 'model.safetensors'), [...head, ...layers.flat(), ...tail], { format: 'pt' });
  }

  const md = file.metadata;
  const ropeScaling =
    byName.has('rope_freqs.weight') && model.architecture === 'llama'
      ? // What llama.cpp's converter turned into these rope_freqs (the oracle README's values).
        {
          rope_type: 'llama3',
          factor: 8,
          low_freq_factor: 1,
          high_freq_factor: 4,
          original_max_position_embeddings: 8192,
        }
      : null;
  const spec = model.tokenizer as Extract<TokenizerSpec, { kind: 'gpt2-bpe' }>;
  writeJson(join(dir, 'config.json'), {
    architectures: [hf.architectures],
    model_type: hf.modelType,
    vocab_size: a.vocabSize,
    hidden_size: a.hiddenSize,
    intermediate_size: a.intermediateSize,
    num_hidden_layers: a.numLayers,
    num_attention_heads: a.numHeads,
    num_key_value_heads: a.numKvHeads,
    hidden_act: 'silu',
    max_position_embeddings: a.maxPositions,
    rms_norm_eps: Number(md.get(`${model.architecture}.attention.layer_norm_rms_epsilon`)),
    rope_theta: a.ropeTheta,
    rope_scaling: ropeScaling,
    tie_word_embeddings: !byName.has('output.weight'),
    bos_token_id: model.bosTokenId ?? null,
    eos_token_id: model.eosTokenIds.length === 1 ? model.eosTokenIds[0] : model.eosTokenIds,
    torch_dtype: 'float16',
    ...(model.architecture === 'qwen2' && { use_sliding_window: false, sliding_window: 32768 }),
  });
  const { tokenizerJson, tokenizerConfig } = hfTokenizerOf(spec, model.chatTemplate);
  writeJson(join(dir, 'tokenizer.json'), tokenizerJson);
  writeJson(join(dir, 'tokenizer_config.json'), tokenizerConfig);
  return model;
}

/**
 * The inverse of llama.cpp's `permute` (convert_hf_to_gguf.py): within each head, GGUF row `2i + half` is
 * transformers' row `half · headDim/2 + i`. Rows are `bytes.length / rows` bytes each.
 */
export function unpermuteRows(bytes: Uint8Array, rows: number, heads: number, headDim: number): Uint8Array {
  const rowBytes = bytes.length / rows;
  if (rows !== heads * headDim) throw new Error(`${rows} rows are not ${heads} heads of ${headDim}`);
  const out = new Uint8Array(bytes.length);
  const half = headDim / 2;
  for (let h = 0; h < heads; h++) {
    for (let i = 0; i < half; i++) {
      for (const side of [0, 1]) {
        const from = (h * headDim + 2 * i + side) * rowBytes;
        const to = (h * headDim + side * half + i) * rowBytes;
        out.set(bytes.subarray(from, from + rowBytes), to);
      }
    }
  }
  return out;
}

/** A tokenizer.json and tokenizer_config.json that tokenize as the GGUF's byte-level BPE vocabulary does. */
function hfTokenizerOf(
  spec: Extract<TokenizerSpec, { kind: 'gpt2-bpe' }>,
  chatTemplate: string | undefined,
): { tokenizerJson: unknown; tokenizerConfig: Record<string, unknown> } {
  const pre = PRE_TOKENIZER[spec.pre ?? ''];
  if (!pre) throw new Error(`no tokenizer.json pre-tokenizer for ${spec.pre}`);
  const vocab: Record<string, number> = {};
  const added: Record<string, unknown>[] = [];
  spec.pieces.forEach((piece, id) => {
    const type = spec.types[id];
    if (type === NORMAL) vocab[piece] = id;
    // Padding rows past the tokenizer's own ids (UNUSED) have no token in transformers' files either.
    else if (type === CONTROL || type === USER_DEFINED)
      added.push({
        id,
        content: piece,
        single_word: false,
        lstrip: false,
        rstrip: false,
        normalized: type !== CONTROL,
        special: type === CONTROL,
      });
  });
  const addBos = spec.addBos ?? true;
  const bos = spec.bosTokenId === undefined ? undefined : spec.pieces[spec.bosTokenId];
  const eos = spec.pieces[spec.eosTokenIds[0]!];
  const tokenizerJson = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: added,
    normalizer: pre.nfc ? { type: 'NFC' } : null,
    pre_tokenizer: {
      type: 'Sequence',
      pretokenizers: [
        { type: 'Split', pattern: { Regex: pre.pattern }, behavior: 'Isolated', invert: false },
        { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false },
      ],
    },
    post_processor:
      addBos && bos !== undefined
        ? {
            type: 'TemplateProcessing',
            single: [{ SpecialToken: { id: bos, type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
            pair: [
              { SpecialToken: { id: bos, type_id: 0 } },
              { Sequence: { id: 'A', type_id: 0 } },
              { SpecialToken: { id: bos, type_id: 1 } },
              { Sequence: { id: 'B', type_id: 1 } },
            ],
            special_tokens: { [bos]: { id: bos, ids: [spec.bosTokenId], tokens: [bos] } },
          }
        : { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false },
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: pre.ignoreMerges,
      vocab,
      merges: spec.merges,
    },
  };
  const tokenizerConfig: Record<string, unknown> = {
    tokenizer_class: 'PreTrainedTokenizerFast',
    add_bos_token: addBos,
    add_eos_token: false,
    bos_token: bos ?? null,
    eos_token: eos,
    clean_up_tokenization_spaces: false,
  };
  if (chatTemplate !== undefined) tokenizerConfig.chat_template = chatTemplate;
  return { tokenizerJson, tokenizerConfig };
}

/** Which float type {@link writeTinyLlamaCheckpoint} stores the weights in. */
export type FloatDtype = 'F32' | 'F16' | 'BF16';

/**
 * The built-in tiny Llama (its seeded weights, config.json, tokenizer and chat template) as a safetensors checkpoint
 * in `dir`: the same model the tiny-llama ONNX export folder holds, when written in F32.
 */
export function writeTinyLlamaCheckpoint(dir: string, dtype: FloatDtype = 'F32'): string {
  const w = tinyLlamaWeights();
  const config = tinyLlamaConfigJson();
  const H = config.hidden_size as number;
  const entries: SafetensorsEntry[] = [];
  const add = (name: string, values: Float32Array, shape: number[]): void => {
    entries.push({ name, dtype, shape, data: encodeFloats(values, dtype) });
  };
  const matrix = (name: string, values: Float32Array, cols: number): void =>
    add(name, values, [values.length / cols, cols]);
  matrix('model.embed_tokens.weight', w.tokenEmbedding as Float32Array, H);
  w.layers.forEach((l, i) => {
    const p = `model.layers.${i}`;
    add(`${p}.input_layernorm.weight`, l.attnNorm, [H]);
    matrix(`${p}.self_attn.q_proj.weight`, l.q as Float32Array, H);
    matrix(`${p}.self_attn.k_proj.weight`, l.k as Float32Array, H);
    matrix(`${p}.self_attn.v_proj.weight`, l.v as Float32Array, H);
    matrix(`${p}.self_attn.o_proj.weight`, l.o as Float32Array, (l.o as Float32Array).length / H);
    add(`${p}.post_attention_layernorm.weight`, l.ffnNorm, [H]);
    matrix(`${p}.mlp.gate_proj.weight`, l.gate as Float32Array, H);
    matrix(`${p}.mlp.up_proj.weight`, l.up as Float32Array, H);
    matrix(`${p}.mlp.down_proj.weight`, l.down as Float32Array, config.intermediate_size as number);
  });
  add('model.norm.weight', w.finalNorm, [H]);
  matrix('lm_head.weight', w.lmHead as Float32Array, H);
  mkdirSync(dir, { recursive: true });
  writeSafetensors(join(dir, 'model.safetensors'), entries, { format: 'pt' });
  const { tokenizerJson, tokenizerConfig } = tinyLlamaTokenizer();
  writeJson(join(dir, 'config.json'), {
    ...config,
    torch_dtype: { F32: 'float32', F16: 'float16', BF16: 'bfloat16' }[dtype],
  });
  writeJson(join(dir, 'tokenizer.json'), tokenizerJson);
  writeJson(join(dir, 'tokenizer_config.json'), tokenizerConfig);
  return dir;
}

/** Float32 values as little-endian F32, F16 (rounded to nearest) or BF16 (round to nearest even) bytes. */
export function encodeFloats(values: Float32Array, dtype: FloatDtype): Uint8Array {
  if (dtype === 'F32') return new Uint8Array(Float32Array.from(values).buffer);
  const out = new Uint16Array(values.length);
  const bits = new Uint32Array(Float32Array.from(values).buffer);
  for (let i = 0; i < values.length; i++) {
    const b = bits[i]!;
    if (dtype === 'BF16') out[i] = (b + 0x7fff + ((b >> 16) & 1)) >>> 16;
    else out[i] = toHalf(values[i]!);
  }
  return new Uint8Array(out.buffer);
}

// float32 → IEEE half, round to nearest even; the tiny model's values are far from the half range's edges.
function toHalf(v: number): number {
  const sign = v < 0 || Object.is(v, -0) ? 0x8000 : 0;
  const a = Math.abs(v);
  if (a === 0) return sign;
  if (a >= 65520) return sign | 0x7c00;
  if (a < 2 ** -14) return sign | Math.round(a / 2 ** -24);
  const exponent = Math.floor(Math.log2(a));
  let mantissa = Math.round((a / 2 ** exponent - 1) * 1024);
  let e = exponent;
  if (mantissa === 1024) {
    mantissa = 0;
    e++;
  }
  return sign | ((e + 15) << 10) | mantissa;
}

function writeJson(path: string, value: unknown): void {
  writeFileSync(path, `${JSON.stringify(value, null, 2)}\n`);
}
