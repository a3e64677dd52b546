import { basename } from 'node:path';
import { ggufTokenizer } from './gguf-tokenizer.js';
import {
  builtDecoderConfig,
  ensureLlamaGraphOf,
  UnsupportedModelError,
  type LlamaArchitecture,
  type LlamaLayerWeights,
  type LlamaWeights,
  type LoadedLlm,
  type TokenizerSpec,
} from '@nucleus/sdk/llm';
import type { Progress } from '@nucleus/sdk';
import { readGguf, type GgufFile, type GgufTensorInfo, type GgufValue } from './gguf-reader.js';
import { GGML_READABLE_TYPES, ggmlTypeName, readTensorF32 } from './gguf-tensors.js';

/** Options for `loadGguf`. */
export interface LoadGgufOptions {
  name?: string;
  maxContext?: number;
  /** Where the generated graph is cached (`<cacheDir>/gguf/<sha256>-<style>-r<revision>/`). */
  cacheDir: string;
  graphStyle?: 'generic' | 'contrib';
  /** A new progress for each long step (hashing, building the graph). */
  progress?: () => Progress;
}

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

/** What a GGUF file says about a Llama model, after every compatibility check passed. */
export interface GgufLlama {
  file: GgufFile;
  arch: LlamaArchitecture;
  tokenizer: TokenizerSpec;
  bosTokenId?: number;
  eosTokenIds: number[];
  chatTemplate?: string;
  name: string;
}

/**
 * Loads a GGUF Llama: checks everything it would need first (architecture, tensor types, RoPE scaling, tokenizer)
 * and refuses with the full list; builds the ONNX graph (dequantized to float32) into the model cache keyed by the
 * file's SHA-256, reusing it on later loads; takes the tokenizer and chat template from the metadata.
 */
export async function loadGguf(path: string, options: LoadGgufOptions): Promise<LoadedLlm> {
  const model = inspectGguf(path);
  const style = options.graphStyle ?? 'generic';
  const onnxPath = await ensureLlamaGraphOf(path, {
    cacheDir: options.cacheDir,
    ...(options.progress && { progress: options.progress }),
    kind: 'gguf',
    style,
    arch: model.arch,
    weights: () => readGgufWeights(model.file, model.arch),
    // llama.cpp's `llama` architecture rotates adjacent pairs; its converter permutes HF's Wq/Wk to match.
    ropeLayout: 'interleaved',
    name: 'gguf_llama',
  });
  const config = builtDecoderConfig(model.arch, style, {
    eosTokenIds: model.eosTokenIds,
    ...(options.maxContext !== undefined && { maxContext: options.maxContext }),
  });
  if (model.bosTokenId !== undefined) config.bosTokenId = model.bosTokenId;
  const loaded: LoadedLlm = {
    name: options.name ?? model.name,
    source: 'gguf',
    config,
    onnxPath,
    tokenizer: model.tokenizer,
  };
  if (model.chatTemplate !== undefined) loaded.chatTemplate = model.chatTemplate;
  return loaded;
}

/** Reads a GGUF header and checks it describes a Llama Nucleus can run; throws `UnsupportedModelError` listing every problem. */
export function inspectGguf(path: string): GgufLlama {
  const file = readGguf(path);
  const md = file.metadata;
  const problems: string[] = [];

  const arch = md.get('general.architecture');
  if (arch !== 'llama') problems.push(`architecture ${JSON.stringify(arch ?? null)} (only "llama" is supported)`);
  const prefix = typeof arch === 'string' ? arch : 'llama';
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
    return typeof v === 'number' ? v : fallback;
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
  if (md.has(`${prefix}.attention.value_length`) && int('attention.value_length') !== headDim) {
    problems.push(
      `attention.value_length ${String(md.get(`${prefix}.attention.value_length`))} differs from key_length ${headDim}`,
    );
  }
  if (numHeads > 0 && numKvHeads > 0 && numHeads % numKvHeads !== 0)
    problems.push(`${numHeads} heads do not split into ${numKvHeads} kv heads`);
  const ropeDims = int('rope.dimension_count', headDim);
  if (ropeDims !== headDim) problems.push(`partial RoPE (rope.dimension_count ${ropeDims} of head dim ${headDim})`);
  const scalingType = md.get(`${prefix}.rope.scaling.type`);
  if (scalingType !== undefined && scalingType !== 'none') problems.push(`RoPE scaling "${String(scalingType)}"`);
  const scaleLinear = md.get(`${prefix}.rope.scale_linear`);
  if (typeof scaleLinear === 'number' && scaleLinear !== 1) problems.push(`linear RoPE scaling ${scaleLinear}`);
  const experts = md.get(`${prefix}.expert_count`);
  if (experts !== undefined && Number(experts) > 0) problems.push(`mixture of experts (${String(experts)} experts)`);
  for (const key of ['attention.sliding_window', 'attn_logit_softcapping', 'final_logit_softcapping']) {
    if (md.has(`${prefix}.${key}`)) problems.push(`${prefix}.${key} (not part of the Llama graph)`);
  }

  // Tensors: exactly the Llama set, in types this reader dequantizes.
  const byName = new Map(file.tensors.map((t) => [t.name, t]));
  const expected = new Map<string, number[]>();
  const vocabFromTokens = Array.isArray(md.get('tokenizer.ggml.tokens'))
    ? (md.get('tokenizer.ggml.tokens') as GgufValue[]).length
    : 0;
  const embd = byName.get('token_embd.weight');
  const vocabSize = embd?.dims[1] ?? vocabFromTokens;
  const q = numHeads * headDim;
  const kv = numKvHeads * headDim;
  expected.set('token_embd.weight', [hiddenSize, vocabSize]);
  expected.set('output_norm.weight', [hiddenSize]);
  if (byName.has('output.weight')) expected.set('output.weight', [hiddenSize, vocabSize]);
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
  for (let l = 0; l < numLayers; l++) for (const t of LAYER_TENSORS) expected.set(`blk.${l}.${t}.weight`, layerDims[t]);
  const missing = [...expected.keys()].filter((n) => !byName.has(n));
  if (missing.length > 0) problems.push(`missing tensors: ${summarize(missing)}`);
  const extra = file.tensors.map((t) => t.name).filter((n) => !expected.has(n));
  if (extra.length > 0)
    problems.push(`tensors outside the Llama graph (biases, rope factors, experts …): ${summarize(extra)}`);
  const badTypes = new Map<string, string[]>();
  for (const t of file.tensors) {
    if (!GGML_READABLE_TYPES.includes(t.type)) {
      const list = badTypes.get(ggmlTypeName(t.type)) ?? [];
      list.push(t.name);
      badTypes.set(ggmlTypeName(t.type), list);
    }
  }
  for (const [type, names] of badTypes) {
    problems.push(
      `tensor type ${type} (${names.length} tensor${names.length > 1 ? 's' : ''}, e.g. ${names[0]}; supported: F32, F16, Q8_0)`,
    );
  }
  for (const [name, dims] of expected) {
    const t = byName.get(name);
    if (t && (t.dims.length !== dims.length || t.dims.some((d, i) => d !== dims[i]))) {
      problems.push(`tensor ${name} is [${t.dims.join(', ')}], expected [${dims.join(', ')}]`);
    }
  }

  const tokenizer = ggufTokenizer(md, vocabSize, problems);
  if (problems.length > 0) throw new UnsupportedModelError(`GGUF file ${path}`, problems);

  const archFacts: LlamaArchitecture = {
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
  };
  const out: GgufLlama = {
    file,
    arch: archFacts,
    tokenizer: tokenizer.spec,
    eosTokenIds: tokenizer.eosTokenIds,
    name:
      typeof md.get('general.name') === 'string'
        ? (md.get('general.name') as string)
        : basename(path).replace(/\.gguf$/i, ''),
  };
  if (tokenizer.bosTokenId !== undefined) out.bosTokenId = tokenizer.bosTokenId;
  const template = md.get('tokenizer.chat_template');
  if (typeof template === 'string') out.chatTemplate = template;
  return out;
}

/** Reads and dequantizes every weight of a checked GGUF Llama into float32 `[out, in]` matrices. */
export function readGgufWeights(file: GgufFile, a: LlamaArchitecture): LlamaWeights {
  const byName = new Map(file.tensors.map((t) => [t.name, t]));
  const read = (name: string): Float32Array => readTensorF32(file, byName.get(name) as GgufTensorInfo);
  const layers: LlamaLayerWeights[] = [];
  for (let l = 0; l < a.numLayers; l++) {
    const p = `blk.${l}`;
    layers.push({
      attnNorm: read(`${p}.attn_norm.weight`),
      q: read(`${p}.attn_q.weight`),
      k: read(`${p}.attn_k.weight`),
      v: read(`${p}.attn_v.weight`),
      o: read(`${p}.attn_output.weight`),
      ffnNorm: read(`${p}.ffn_norm.weight`),
      gate: read(`${p}.ffn_gate.weight`),
      up: read(`${p}.ffn_up.weight`),
      down: read(`${p}.ffn_down.weight`),
    });
  }
  const weights: LlamaWeights = {
    tokenEmbedding: read('token_embd.weight'),
    layers,
    finalNorm: read('output_norm.weight'),
  };
  if (byName.has('output.weight')) weights.lmHead = read('output.weight');
  return weights;
}

function summarize(names: string[]): string {
  return names.length <= 4 ? names.join(', ') : `${names.slice(0, 4).join(', ')} and ${names.length - 4} more`;
}
