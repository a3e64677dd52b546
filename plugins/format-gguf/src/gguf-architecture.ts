import { basename } from 'node:path';
import {
  UnsupportedModelError,
  type GgmlRopeScaling,
  type LlamaArchitecture,
  type RopeLayout,
  type TokenizerSpec,
} from '@nucleus/sdk/llm';
import { readGguf, type GgufFile, type GgufValue } from './gguf-reader.js';
import { ggmlTypeName, SUPPORTED_GGML_TYPE_NAMES, SUPPORTED_GGML_TYPES } from './ggml-types.js';
import { checkGgufLimits } from './gguf-limits.js';
import { ggufTokenizer } from './gguf-tokenizer.js';

/** How a `general.architecture` lays out the Llama graph. */
interface ArchitectureFamily {
  /** llama.cpp's rope type: NORM rotates adjacent pairs, NEOX the two halves of a head. */
  ropeLayout: RopeLayout;
  /**
   * Phi-3's layout: q, k and v may come stacked in one `attn_qkv` matrix, gate and up always in one `ffn_up`
   * (gate rows first), `attention.sliding_window` is part of the graph, and `rope_factors_long/short` hold
   * LongRoPE's frequency divisors.
   */
  phi3?: true;
}

/**
 * The architectures whose GGUF tensors make a Llama graph. Mistral's converter writes `llama`; `mistral` is accepted
 * for files that name it. Qwen2 adds q/k/v biases (optional tensors for every family, as llama.cpp loads them).
 */
const FAMILIES: Readonly<Record<string, ArchitectureFamily>> = {
  llama: { ropeLayout: 'interleaved' },
  mistral: { ropeLayout: 'interleaved' },
  qwen2: { ropeLayout: 'half' },
  phi3: { ropeLayout: 'half', phi3: true },
};

/** The `general.architecture` values this format loads. */
export const SUPPORTED_ARCHITECTURES: readonly string[] = Object.keys(FAMILIES);

const LAYER_TENSORS = [
  'attn_norm',
  'attn_q',
  'attn_k',
  'attn_v',
  'attn_output',
  'ffn_norm',
  'ffn_gate',
  'ffn_down',
  'ffn_up',
] as const;

const OPTIONAL_LAYER_BIASES = ['attn_q', 'attn_k', 'attn_v'] as const;

/** What a GGUF file says about a Llama-family model, after every compatibility check passed. */
export interface GgufLlama {
  file: GgufFile;
  /** `general.architecture`. */
  architecture: string;
  arch: LlamaArchitecture;
  ropeLayout: RopeLayout;
  /**
   * Divisors of each RoPE pair's frequency as a constant, when the file scales RoPE linearly
   * (`rope.scaling.type = linear`); `rope_freqs.weight` divisors are read with the weights and multiplied in.
   * 1 when the scaling is ggml's (`arch.ropeScaling`), which carries the factor itself.
   */
  ropeScale: number;
  /**
   * Phi-3 LongRoPE: the context past which llama.cpp divides the frequencies by `rope_factors_long` instead of
   * `rope_factors_short` (`rope.scaling.original_context_length`); absent when the file has no such factors.
   */
  longRopeAbove?: number;
  tokenizer: TokenizerSpec;
  bosTokenId?: number;
  eosTokenIds: number[];
  chatTemplate?: string;
  name: string;
}

/**
 * Reads a GGUF header and checks it describes a model Nucleus can run; throws `UnsupportedModelError` listing every
 * problem at once (architecture, hyperparameters, tensor names, shapes and types, RoPE scaling, tokenizer).
 */
export function inspectGguf(path: string): GgufLlama {
  const file = readGguf(path);
  // Sizes the file's own tensors cannot back (3 million layers in a few hundred bytes) are refused before any loop.
  checkGgufLimits(file);
  const md = file.metadata;
  const problems: string[] = [];

  const archValue = md.get('general.architecture');
  const family = typeof archValue === 'string' ? FAMILIES[archValue] : undefined;
  if (!family) {
    problems.push(
      `architecture ${JSON.stringify(archValue ?? null)} (supported: ${SUPPORTED_ARCHITECTURES.join(', ')})`,
    );
  }
  const prefix = typeof archValue === 'string' ? archValue : 'llama';
  const int = (key: string, fallback?: number): number => {
    const v = md.get(`${prefix}.${key}`);
    if (v === undefined && fallback !== undefined) return fallback;
    if (Array.isArray(v)) {
      problems.push(`${prefix}.${key} differs per layer (${v.length} values)`);
      return 0;
    }
    const n = typeof v === 'bigint' ? Number(v) : v;
    if (typeof n !== 'number' || !Number.isInteger(n) || n <= 0) {
      problems.push(`${prefix}.${key} is ${v === undefined ? 'missing' : `invalid (${String(v)})`}`);
      return 0;
    }
    return n;
  };
  const float = (key: string, fallback: number): number => {
    const v = md.get(`${prefix}.${key}`);
    return typeof v === 'number' && Number.isFinite(v) ? v : fallback;
  };

  const hiddenSize = int('embedding_length');
  const numLayers = int('block_count');
  const intermediateSize = int('feed_forward_length');
  const numHeads = int('attention.head_count');
  const numKvHeads = int('attention.head_count_kv', numHeads);
  const contextLength = int('context_length');
  const headDim = md.has(`${prefix}.attention.key_length`)
    ? int('attention.key_length')
    : numHeads > 0
      ? hiddenSize / numHeads
      : 0;
  if (!Number.isInteger(headDim)) problems.push(`${hiddenSize} embedding values do not split into ${numHeads} heads`);
  if (md.has(`${prefix}.attention.value_length`) && int('attention.value_length') !== headDim) {
    problems.push(
      `attention.value_length ${String(md.get(`${prefix}.attention.value_length`))} differs from key_length ${headDim}`,
    );
  }
  if (numHeads > 0 && numKvHeads > 0 && numHeads % numKvHeads !== 0)
    problems.push(`${numHeads} heads do not split into ${numKvHeads} kv heads`);
  const ropeDims = int('rope.dimension_count', headDim);
  if (ropeDims !== headDim) problems.push(`partial RoPE (rope.dimension_count ${ropeDims} of head dim ${headDim})`);
  const rope = ropeScaling(md, prefix, contextLength, problems);
  const experts = md.get(`${prefix}.expert_count`);
  if (experts !== undefined && Number(experts) > 0) problems.push(`mixture of experts (${String(experts)} experts)`);
  for (const key of ['attention.sliding_window', 'attn_logit_softcapping', 'final_logit_softcapping']) {
    if (key === 'attention.sliding_window' && family?.phi3) continue;
    if (md.has(`${prefix}.${key}`)) problems.push(`${prefix}.${key} (not part of the Llama graph)`);
  }
  // 0 (or absent) means no window, as in llama.cpp.
  const window = family?.phi3 ? md.get(`${prefix}.attention.sliding_window`) : undefined;
  const slidingWindow = typeof window === 'number' && Number.isInteger(window) && window > 0 ? window : 0;

  // A layer count the file cannot hold tensors for is refused before anything is built per layer.
  const layersHeld = numLayers <= file.tensors.length;
  if (!layersHeld)
    problems.push(`${prefix}.block_count ${numLayers} is more layers than the file's ${file.tensors.length} tensors`);

  const byName = new Map(file.tensors.map((t) => [t.name, t]));
  const vocabFromTokens = Array.isArray(md.get('tokenizer.ggml.tokens'))
    ? (md.get('tokenizer.ggml.tokens') as GgufValue[]).length
    : 0;
  const vocabSize = byName.get('token_embd.weight')?.dims[1] ?? vocabFromTokens;
  const q = numHeads * headDim;
  const kv = numKvHeads * headDim;
  const expected = new Map<string, number[]>([
    ['token_embd.weight', [hiddenSize, vocabSize]],
    ['output_norm.weight', [hiddenSize]],
  ]);
  const optional = new Map<string, number[]>([
    ['output.weight', [hiddenSize, vocabSize]],
    ['rope_freqs.weight', [headDim / 2]],
  ]);
  if (family?.phi3) {
    optional.set('rope_factors_long.weight', [headDim / 2]);
    optional.set('rope_factors_short.weight', [headDim / 2]);
  }
  const layerDims: Record<(typeof LAYER_TENSORS)[number], number[]> = {
    attn_norm: [hiddenSize],
    attn_q: [hiddenSize, q],
    attn_k: [hiddenSize, kv],
    attn_v: [hiddenSize, kv],
    attn_output: [q, hiddenSize],
    ffn_norm: [hiddenSize],
    ffn_gate: [hiddenSize, intermediateSize],
    ffn_down: [intermediateSize, hiddenSize],
    ffn_up: [hiddenSize, intermediateSize],
  };
  const biasDims = { attn_q: [q], attn_k: [kv], attn_v: [kv] };
  for (let l = 0; layersHeld && l < numLayers; l++) {
    for (const t of LAYER_TENSORS) expected.set(`blk.${l}.${t}.weight`, layerDims[t]);
    for (const t of OPTIONAL_LAYER_BIASES) optional.set(`blk.${l}.${t}.bias`, biasDims[t]);
    if (family?.phi3) {
      // llama.cpp's phi3 graph: SwiGLU over one `ffn_up` of 2 × feed_forward_length rows, q/k/v stacked or apart.
      expected.delete(`blk.${l}.ffn_gate.weight`);
      expected.set(`blk.${l}.ffn_up.weight`, [hiddenSize, 2 * intermediateSize]);
      if (byName.has(`blk.${l}.attn_qkv.weight`)) {
        for (const t of ['attn_q', 'attn_k', 'attn_v']) expected.delete(`blk.${l}.${t}.weight`);
        expected.set(`blk.${l}.attn_qkv.weight`, [hiddenSize, q + 2 * kv]);
      }
    }
  }
  const missing = [...expected.keys()].filter((n) => !byName.has(n));
  if (layersHeld && missing.length > 0) problems.push(`missing tensors: ${summarize(missing)}`);
  const extra = file.tensors.map((t) => t.name).filter((n) => !expected.has(n) && !optional.has(n));
  if (layersHeld && extra.length > 0)
    problems.push(`tensors outside the ${prefix} graph (other biases, experts …): ${summarize(extra)}`);
  const badTypes = new Map<string, string[]>();
  for (const t of file.tensors) {
    if (!SUPPORTED_GGML_TYPES.includes(t.type)) {
      const list = badTypes.get(ggmlTypeName(t.type)) ?? [];
      list.push(t.name);
      badTypes.set(ggmlTypeName(t.type), list);
    }
  }
  const supportedTypes = SUPPORTED_GGML_TYPE_NAMES.join(', ');
  for (const [type, names] of badTypes) {
    problems.push(
      `tensor type ${type} (${names.length} tensor${names.length > 1 ? 's' : ''}, e.g. ${names[0]}; supported: ${supportedTypes})`,
    );
  }
  for (const [name, dims] of [...expected, ...optional]) {
    const t = byName.get(name);
    if (dims.includes(0)) continue; // a size the metadata failed to give is reported above
    if (t && (t.dims.length !== dims.length || t.dims.some((d, i) => d !== dims[i]))) {
      problems.push(`tensor ${name} is [${t.dims.join(', ')}], expected [${dims.join(', ')}]`);
    }
  }

  const tokenizer = ggufTokenizer(md, vocabSize, problems);
  const longRope = byName.has('rope_factors_long.weight');
  if (longRope !== byName.has('rope_factors_short.weight'))
    problems.push('LongRoPE needs both rope_factors_long.weight and rope_factors_short.weight');
  if (longRope && byName.has('rope_freqs.weight')) problems.push('both rope_freqs.weight and LongRoPE factors');
  if (problems.length > 0 || !family) throw new UnsupportedModelError(`GGUF file ${path}`, problems);

  const arch: LlamaArchitecture = {
    vocabSize,
    hiddenSize,
    intermediateSize,
    numLayers,
    numHeads,
    numKvHeads,
    headDim,
    rmsNormEps: float('attention.layer_norm_rms_epsilon', 1e-5),
    ropeTheta: float('rope.freq_base', 10000),
    maxPositions: contextLength,
    ...(rope.ggml && { ropeScaling: rope.ggml }),
    ...(slidingWindow > 0 && slidingWindow < contextLength && { slidingWindow }),
  };
  const name = md.get('general.name');
  const out: GgufLlama = {
    file,
    architecture: prefix,
    arch,
    ropeLayout: family.ropeLayout,
    ropeScale: rope.scale,
    ...(longRope && { longRopeAbove: rope.originalContext }),
    tokenizer: tokenizer.spec,
    eosTokenIds: tokenizer.eosTokenIds,
    name: typeof name === 'string' ? name : basename(path).replace(/\.gguf$/i, ''),
  };
  if (tokenizer.bosTokenId !== undefined) out.bosTokenId = tokenizer.bosTokenId;
  const template = md.get('tokenizer.chat_template');
  if (typeof template === 'string') out.chatTemplate = template;
  return out;
}

/** How a file scales RoPE: a constant divisor of every frequency (llama2.c tables), or ggml's parameters. */
interface RopeScalingOfFile {
  scale: number;
  ggml?: GgmlRopeScaling;
  /** `rope.scaling.original_context_length`, or the context length. */
  originalContext: number;
}

/**
 * RoPE scaling as llama.cpp resolves it from the file (`llama_context`'s cparams, llama.cpp's own defaults for what
 * the file leaves out): none or linear keep llama2.c's tables with a constant divisor; YaRN, or an attention factor
 * (`rope.scaling.attn_factor`, Phi-3's LongRoPE), take ggml's.
 */
function ropeScaling(
  md: Map<string, GgufValue>,
  prefix: string,
  contextLength: number,
  problems: string[],
): RopeScalingOfFile {
  const value = (key: string): GgufValue | undefined => md.get(`${prefix}.rope.scaling.${key}`);
  const positive = (key: string): number | undefined => {
    const v = value(key);
    if (v === undefined) return undefined;
    if (typeof v === 'number' && v > 0) return v;
    problems.push(`${prefix}.rope.scaling.${key} ${String(v)} is not a positive number`);
    return undefined;
  };
  // llama.cpp writes a negative YaRN parameter for "not set".
  const set = (key: string): number | undefined => {
    const v = value(key);
    return typeof v === 'number' && v >= 0 ? v : undefined;
  };
  const type = value('type');
  const legacy = md.get(`${prefix}.rope.scale_linear`);
  const orig = value('original_context_length');
  const originalContext =
    typeof orig === 'number' && orig > 0 ? orig : typeof orig === 'bigint' ? Number(orig) : contextLength;
  if (type !== undefined && !['none', 'linear', 'yarn', 'longrope'].includes(String(type))) {
    problems.push(`RoPE scaling "${String(type)}" (supported: none, linear, yarn, longrope, and Llama 3 rope_freqs)`);
    return { scale: 1, originalContext };
  }
  let factor = positive('factor') ?? 1;
  if (type === undefined || type === 'none') factor = typeof legacy === 'number' && legacy > 0 ? legacy : 1;
  const attnFactor = positive('attn_factor') ?? 1;
  if (type !== 'yarn' && attnFactor === 1) return { scale: factor, originalContext };
  const logMul = value('yarn_log_multiplier');
  if (typeof logMul === 'number' && logMul !== 0)
    problems.push(`${prefix}.rope.scaling.yarn_log_multiplier ${logMul} (DeepSeek's YaRN variant)`);
  const extFactor = set('yarn_ext_factor') ?? (type === 'yarn' ? 1 : 0);
  let attn = set('yarn_attn_factor') ?? 1;
  if (extFactor !== 0) {
    // llama.cpp sets YaRN's magnitude (1 + 0.1·ln factor) and divides out the one ggml multiplies in again.
    const f = Math.fround;
    const mscale = factor <= 1 ? 1 : f(1 + f(0.1 * f(Math.log(factor))));
    attn = f(mscale * f(1 / f(1 + f(0.1 * f(Math.log(factor))))));
  }
  return {
    scale: 1,
    originalContext,
    ggml: {
      freqScale: Math.fround(1 / factor),
      extFactor,
      attnFactor: Math.fround(attn * attnFactor),
      betaFast: set('yarn_beta_fast') ?? 32,
      betaSlow: set('yarn_beta_slow') ?? 1,
      originalContext,
    },
  };
}

function summarize(names: string[]): string {
  return names.length <= 4 ? names.join(', ') : `${names.slice(0, 4).join(', ')} and ${names.length - 4} more`;
}
