import { existsSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { UnsupportedModelError, type LlamaArchitecture } from '@nucleus/sdk/llm';
import { INDEX_FILE, openCheckpoint, type SafetensorsCheckpoint } from './safetensors-checkpoint.js';
import { FLOAT_DTYPES } from './safetensors-reader.js';

/**
 * The `architectures` of config.json that load as the Llama graph. Mistral is Llama with GQA (and a sliding window
 * that only matters past it); Qwen2 adds q/k/v biases. All three store q_proj/k_proj for RoPE on the two halves of
 * each head (transformers' `rotate_half`), which is the `half` layout of the graph builder: the weights are used as
 * stored, no permutation (llama.cpp's converter permutes them instead, to rotate adjacent pairs).
 */
export const SUPPORTED_HF_ARCHITECTURES: readonly string[] = [
  'LlamaForCausalLM',
  'MistralForCausalLM',
  'Qwen2ForCausalLM',
];

/** The config.json fields read here. */
interface HfConfig {
  architectures?: unknown;
  vocab_size?: unknown;
  hidden_size?: unknown;
  intermediate_size?: unknown;
  num_hidden_layers?: unknown;
  num_attention_heads?: unknown;
  num_key_value_heads?: unknown;
  head_dim?: unknown;
  max_position_embeddings?: unknown;
  rms_norm_eps?: unknown;
  rope_theta?: unknown;
  rope_scaling?: unknown;
  hidden_act?: unknown;
  tie_word_embeddings?: unknown;
  sliding_window?: unknown;
  use_sliding_window?: unknown;
  partial_rotary_factor?: unknown;
  bos_token_id?: unknown;
  eos_token_id?: unknown;
  pad_token_id?: unknown;
  name_or_path?: unknown;
}

/** What a checkpoint folder's config.json and tensors say about its model, after every check passed. */
export interface HfLlama {
  dir: string;
  /** config.json's `architectures[0]`. */
  architecture: string;
  arch: LlamaArchitecture;
  checkpoint: SafetensorsCheckpoint;
  /** The classifier is the token embedding (`tie_word_embeddings`, or no `lm_head.weight`). */
  tied: boolean;
  /** Divisors of each RoPE pair's frequency (linear or Llama 3 scaling), as GGUF's `rope_freqs` holds them. */
  ropeFreqFactors?: Float32Array;
  /** Files whose content makes the model: config.json, the index, the shards. */
  inputs: string[];
  config: Record<string, unknown>;
}

const LAYER_MATRICES = [
  'self_attn.q_proj',
  'self_attn.k_proj',
  'self_attn.v_proj',
  'self_attn.o_proj',
  'mlp.gate_proj',
  'mlp.up_proj',
  'mlp.down_proj',
] as const;

/** Reads a JSON file of a model folder, pushing a problem (and returning undefined) when it is absent or broken. */
export function readFolderJson(
  dir: string,
  file: string,
  problems: string[],
  required: boolean,
): Record<string, unknown> | undefined {
  const path = join(dir, file);
  if (!existsSync(path)) {
    if (required) problems.push(`${file} is missing`);
    return undefined;
  }
  try {
    const parsed = JSON.parse(readFileSync(path, 'utf8')) as unknown;
    if (typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed))
      return parsed as Record<string, unknown>;
    problems.push(`${file} is not a JSON object`);
  } catch (err) {
    problems.push(`${file} is not valid JSON (${(err as Error).message})`);
  }
  return undefined;
}

/**
 * Reads a checkpoint folder's config.json and safetensors headers and checks they describe a model the Llama graph
 * runs: throws `UnsupportedModelError` listing every problem at once (architecture, hyperparameters, RoPE scaling,
 * missing or extra tensors, shapes, dtypes). A file that is not valid safetensors throws `SafetensorsFormatError`.
 */
export function inspectCheckpoint(dir: string): HfLlama {
  const problems: string[] = [];
  const raw = readFolderJson(dir, 'config.json', problems, true);
  if (!raw) throw new UnsupportedModelError(`safetensors checkpoint ${dir}`, problems);
  const config = raw as HfConfig;
  const architectures = Array.isArray(config.architectures) ? (config.architectures as unknown[]) : [];
  const architecture = typeof architectures[0] === 'string' ? architectures[0] : undefined;
  if (!architecture || !SUPPORTED_HF_ARCHITECTURES.includes(architecture)) {
    // Nothing else is worth checking for a model the graph cannot be: say which it is and which are supported.
    throw new UnsupportedModelError(`safetensors checkpoint ${dir}`, [
      `architecture ${JSON.stringify(architecture ?? config.architectures ?? null)} in config.json (supported: ${SUPPORTED_HF_ARCHITECTURES.join(', ')})`,
    ]);
  }
  const int = (key: keyof HfConfig, fallback?: number): number => {
    const v = config[key];
    if ((v === undefined || v === null) && fallback !== undefined) return fallback;
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v <= 0) {
      problems.push(
        `config.json: ${key} is ${v === undefined ? 'missing' : `not a positive integer (${JSON.stringify(v)})`}`,
      );
      return 0;
    }
    return v;
  };
  const float = (key: keyof HfConfig, fallback: number): number => {
    const v = config[key];
    if (v === undefined || v === null) return fallback;
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) {
      problems.push(`config.json: ${key} is not a positive number (${JSON.stringify(v)})`);
      return fallback;
    }
    return v;
  };
  const hiddenSize = int('hidden_size');
  const intermediateSize = int('intermediate_size');
  const numLayers = int('num_hidden_layers');
  const numHeads = int('num_attention_heads');
  const numKvHeads = int('num_key_value_heads', numHeads);
  const headDim = int('head_dim', numHeads > 0 && hiddenSize % numHeads === 0 ? hiddenSize / numHeads : undefined);
  let maxPositions = int('max_position_embeddings');
  const rmsNormEps = float('rms_norm_eps', 1e-6);
  const ropeTheta = float('rope_theta', 10000);
  if (numHeads > 0 && numKvHeads > 0 && numHeads % numKvHeads !== 0)
    problems.push(`${numHeads} attention heads do not split into ${numKvHeads} key/value heads`);
  if (config.hidden_act !== undefined && config.hidden_act !== 'silu')
    problems.push(`hidden_act ${JSON.stringify(config.hidden_act)} (the Llama graph's feed-forward is SwiGLU: silu)`);
  if (config.partial_rotary_factor !== undefined && config.partial_rotary_factor !== 1)
    problems.push(`partial RoPE (partial_rotary_factor ${JSON.stringify(config.partial_rotary_factor)})`);
  // A sliding window changes nothing while the context fits inside it, so the context is capped there.
  const window = config.sliding_window;
  if (config.use_sliding_window !== false && typeof window === 'number' && window > 0 && window < maxPositions)
    maxPositions = window;

  // The tensors: every file is checked by the reader as it is opened (bad headers throw with the file named).
  const checkpoint = openCheckpoint(dir);
  const byName = checkpoint.tensors;
  const embedding = byName.get('model.embed_tokens.weight')?.tensor;
  const vocabSize = embedding?.shape.length === 2 ? embedding.shape[0]! : int('vocab_size');
  if (typeof config.vocab_size === 'number' && config.vocab_size !== vocabSize)
    problems.push(
      `config.json: vocab_size ${config.vocab_size} differs from model.embed_tokens.weight's ${vocabSize} rows`,
    );
  const tied =
    config.tie_word_embeddings === true || (config.tie_word_embeddings === undefined && !byName.has('lm_head.weight'));
  const layersHeld = numLayers <= byName.size;
  if (!layersHeld)
    problems.push(`num_hidden_layers ${numLayers} is more layers than the checkpoint's ${byName.size} tensors`);

  const q = numHeads * headDim;
  const kv = numKvHeads * headDim;
  const expected = new Map<string, number[]>([
    ['model.embed_tokens.weight', [vocabSize, hiddenSize]],
    ['model.norm.weight', [hiddenSize]],
  ]);
  if (!tied) expected.set('lm_head.weight', [vocabSize, hiddenSize]);
  const optional = new Map<string, number[]>();
  if (tied) optional.set('lm_head.weight', [vocabSize, hiddenSize]);
  const shapes: Record<(typeof LAYER_MATRICES)[number], number[]> = {
    'self_attn.q_proj': [q, hiddenSize],
    'self_attn.k_proj': [kv, hiddenSize],
    'self_attn.v_proj': [kv, hiddenSize],
    'self_attn.o_proj': [hiddenSize, q],
    'mlp.gate_proj': [intermediateSize, hiddenSize],
    'mlp.up_proj': [intermediateSize, hiddenSize],
    'mlp.down_proj': [hiddenSize, intermediateSize],
  };
  const ignored = new Set<string>();
  for (let l = 0; layersHeld && l < numLayers; l++) {
    const p = `model.layers.${l}`;
    expected.set(`${p}.input_layernorm.weight`, [hiddenSize]);
    expected.set(`${p}.post_attention_layernorm.weight`, [hiddenSize]);
    for (const m of LAYER_MATRICES) expected.set(`${p}.${m}.weight`, shapes[m]);
    optional.set(`${p}.self_attn.q_proj.bias`, [q]);
    optional.set(`${p}.self_attn.k_proj.bias`, [kv]);
    optional.set(`${p}.self_attn.v_proj.bias`, [kv]);
    // Older checkpoints saved the RoPE frequencies as a buffer; they are recomputed from rope_theta.
    ignored.add(`${p}.self_attn.rotary_emb.inv_freq`);
  }
  if (layersHeld) {
    const missing = [...expected.keys()].filter((n) => !byName.has(n));
    if (missing.length > 0) problems.push(`missing tensors: ${summarize(missing)}`);
    const extra = [...byName.keys()].filter((n) => !expected.has(n) && !optional.has(n) && !ignored.has(n));
    if (extra.length > 0) problems.push(`tensors outside the ${architecture} graph: ${summarize(extra)}`);
  }
  for (const [name, dims] of [...expected, ...optional]) {
    const t = byName.get(name)?.tensor;
    if (!t || dims.includes(0)) continue;
    if (t.shape.length !== dims.length || t.shape.some((d, i) => d !== dims[i]))
      problems.push(`tensor ${name} is [${t.shape.join(', ')}], expected [${dims.join(', ')}]`);
    if (!FLOAT_DTYPES.includes(t.dtype))
      problems.push(`tensor ${name} is ${t.dtype} (supported: ${FLOAT_DTYPES.join(', ')})`);
  }
  const ropeFreqFactors = ropeScaling(config.rope_scaling, ropeTheta, headDim, problems);
  if (problems.length > 0) throw new UnsupportedModelError(`safetensors checkpoint ${dir}`, problems);

  const inputs = [join(dir, 'config.json')];
  if (existsSync(join(dir, INDEX_FILE))) inputs.push(join(dir, INDEX_FILE));
  inputs.push(...checkpoint.files.map((f) => f.path));
  const model: HfLlama = {
    dir,
    architecture,
    arch: {
      vocabSize,
      hiddenSize,
      intermediateSize,
      numLayers,
      numHeads,
      numKvHeads,
      headDim,
      rmsNormEps,
      ropeTheta,
      maxPositions,
    },
    checkpoint,
    tied,
    inputs,
    config: raw,
  };
  if (ropeFreqFactors) model.ropeFreqFactors = ropeFreqFactors;
  return model;
}

/** The name a checkpoint folder is known by: config.json's `_name_or_path`, or the folder's name. */
export function checkpointName(dir: string, config: Record<string, unknown>): string {
  const named = config._name_or_path;
  return typeof named === 'string' && named !== '' ? basename(named) : basename(dir);
}

/**
 * The frequency divisors of `rope_scaling`: none for no scaling, the factor for every pair for `linear`, and for
 * `llama3` what llama.cpp's converter writes into `rope_freqs` (transformers' `_compute_llama3_parameters`).
 * Other schemes (dynamic NTK, YaRN, LongRoPE) change more than the frequencies and are refused.
 */
function ropeScaling(scaling: unknown, theta: number, headDim: number, problems: string[]): Float32Array | undefined {
  if (scaling === undefined || scaling === null) return undefined;
  const s = scaling as Record<string, unknown>;
  const type = s.rope_type ?? s.type;
  if (type === 'default') return undefined;
  const number = (key: string, fallback: number): number => {
    const v = s[key];
    if (v === undefined) return fallback;
    if (typeof v === 'number' && Number.isFinite(v) && v > 0) return v;
    problems.push(`rope_scaling.${key} ${JSON.stringify(v)} is not a positive number`);
    return fallback;
  };
  const pairs = headDim / 2;
  if (type === 'linear') return new Float32Array(pairs).fill(number('factor', 1));
  if (type === 'llama3') {
    const factor = number('factor', 8);
    const low = number('low_freq_factor', 1);
    const high = number('high_freq_factor', 4);
    const original = number('original_max_position_embeddings', 8192);
    const lowWavelen = original / low;
    const highWavelen = original / high;
    const out = new Float32Array(pairs);
    for (let i = 0; i < pairs; i++) {
      // As torch computes the inverse frequencies: in float32.
      const freq = Math.fround(1 / Math.fround(Math.fround(theta) ** Math.fround((2 * i) / headDim)));
      const wavelen = (2 * Math.PI) / freq;
      if (wavelen < highWavelen) out[i] = 1;
      else if (wavelen > lowWavelen) out[i] = factor;
      else {
        const smooth = (original / wavelen - low) / (high - low);
        out[i] = 1 / ((1 - smooth) / factor + smooth);
      }
    }
    return out;
  }
  problems.push(`RoPE scaling ${JSON.stringify(type ?? null)} (supported: none, linear, llama3)`);
  return undefined;
}

function summarize(names: string[]): string {
  return names.length <= 4 ? names.join(', ') : `${names.slice(0, 4).join(', ')} and ${names.length - 4} more`;
}
