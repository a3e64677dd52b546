import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import {
  builtDecoderConfig,
  byteOfPiece,
  ensureLlamaGraphOf,
  TokenType,
  UnsupportedModelError,
  type LlamaArchitecture,
  type LlamaWeights,
  type LoadedLlm,
  type TokenizerSpec,
} from '@nucleus/sdk/llm';
import type { Progress } from '@nucleus/sdk';

/** Options for `loadLlama2c`. */
export interface LoadLlama2cOptions {
  /** The tokenizer file (`tok512.bin`, `tokenizer.bin`). */
  tokenizerPath: string;
  name?: string;
  maxContext?: number;
  /** Where the generated graph is cached (`<cacheDir>/llama2c/<sha256>-<style>-r<revision>/`). */
  cacheDir: string;
  graphStyle?: 'generic' | 'contrib';
  /** A new progress for each long step (hashing, building the graph). */
  progress?: () => Progress;
}

const HEADER_BYTES = 28;

/** The seven int32 of a llama2.c checkpoint header. */
export interface Llama2cHeader {
  dim: number;
  hiddenDim: number;
  nLayers: number;
  nHeads: number;
  nKvHeads: number;
  /** Negative in the file when a separate classifier follows; here always positive. */
  vocabSize: number;
  seqLen: number;
  sharedClassifier: boolean;
}

/** Parses a llama2.c checkpoint header. */
export function readLlama2cHeader(bytes: Uint8Array): Llama2cHeader {
  if (bytes.byteLength < HEADER_BYTES) throw new Error('file too short for a llama2.c header');
  const v = new DataView(bytes.buffer, bytes.byteOffset, HEADER_BYTES);
  const at = (i: number): number => v.getInt32(i * 4, true);
  const vocab = at(5);
  return {
    dim: at(0),
    hiddenDim: at(1),
    nLayers: at(2),
    nHeads: at(3),
    nKvHeads: at(4),
    vocabSize: Math.abs(vocab),
    seqLen: at(6),
    sharedClassifier: vocab > 0,
  };
}

/**
 * Loads a llama2.c checkpoint (`run.c`'s format: header, then float32 arrays back to back) with its tokenizer file;
 * the graph is built into the model cache keyed by the checkpoint's SHA-256.
 */
export async function loadLlama2c(path: string, options: LoadLlama2cOptions): Promise<LoadedLlm> {
  const bytes = await readFile(path);
  const h = readLlama2cHeader(bytes);
  const problems: string[] = [];
  const positive = (name: string, n: number): void => {
    if (!Number.isInteger(n) || n <= 0 || n > 1 << 24) problems.push(`header ${name} is ${n}`);
  };
  positive('dim', h.dim);
  positive('hidden_dim', h.hiddenDim);
  positive('n_layers', h.nLayers);
  positive('n_heads', h.nHeads);
  positive('n_kv_heads', h.nKvHeads);
  positive('vocab_size', h.vocabSize);
  positive('seq_len', h.seqLen);
  if (problems.length === 0) {
    if (h.dim % h.nHeads !== 0) problems.push(`dim ${h.dim} is not a multiple of n_heads ${h.nHeads}`);
    if (h.nHeads % h.nKvHeads !== 0) problems.push(`n_heads ${h.nHeads} is not a multiple of n_kv_heads ${h.nKvHeads}`);
    const expected = HEADER_BYTES + 4 * floatCount(h);
    if (bytes.byteLength !== expected)
      problems.push(`file has ${bytes.byteLength} bytes, the header implies ${expected}`);
  }
  if (problems.length > 0) throw new UnsupportedModelError(`llama2.c checkpoint ${path}`, problems);

  const headDim = h.dim / h.nHeads;
  const arch: LlamaArchitecture = {
    vocabSize: h.vocabSize,
    hiddenSize: h.dim,
    intermediateSize: h.hiddenDim,
    numLayers: h.nLayers,
    numHeads: h.nHeads,
    numKvHeads: h.nKvHeads,
    headDim,
    rmsNormEps: 1e-5,
    ropeTheta: 10000,
    maxPositions: h.seqLen,
  };
  const tokenizer = await readLlama2cTokenizer(options.tokenizerPath, h.vocabSize);
  const style = options.graphStyle ?? 'generic';
  const onnxPath = await ensureLlamaGraphOf(path, {
    cacheDir: options.cacheDir,
    ...(options.progress && { progress: options.progress }),
    kind: 'llama2c',
    style,
    arch,
    weights: () => llama2cWeights(bytes, h),
    ropeLayout: 'interleaved',
    name: 'llama2c',
  });
  const config = builtDecoderConfig(arch, style, {
    bosTokenId: 1,
    eosTokenIds: tokenizer.eosTokenIds,
    ...(options.maxContext !== undefined && { maxContext: options.maxContext }),
  });
  return { name: options.name ?? basename(path).replace(/\.bin$/, ''), source: 'llama2c', config, onnxPath, tokenizer };
}

/** Reads a llama2.c tokenizer file: max token length, then per token a float32 score, an int32 length and the bytes. */
export async function readLlama2cTokenizer(
  path: string,
  vocabSize: number,
): Promise<Extract<TokenizerSpec, { kind: 'sentencepiece' }>> {
  const bytes = await readFile(path);
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const utf8 = new TextDecoder('utf-8', { fatal: true });
  const pieces: string[] = [];
  const scores: number[] = [];
  let at = 4;
  for (let i = 0; i < vocabSize; i++) {
    if (at + 8 > bytes.byteLength)
      throw new UnsupportedModelError(`llama2.c tokenizer ${path}`, [`ends after ${i} of ${vocabSize} tokens`]);
    scores.push(v.getFloat32(at, true));
    const n = v.getInt32(at + 4, true);
    at += 8;
    if (n < 0 || at + n > bytes.byteLength)
      throw new UnsupportedModelError(`llama2.c tokenizer ${path}`, [`token ${i} has a bad length ${n}`]);
    pieces.push(utf8.decode(bytes.subarray(at, at + n)));
    at += n;
  }
  // run.c ends a story at BOS (1); 2 is the sentencepiece EOS.
  const bosTokenId = 1;
  const eosTokenIds = [2, 1];
  // tok512.bin has no types: bytes are the `<0xNN>` pieces, ids 0..2 unknown/BOS/EOS, the rest text.
  const types = pieces.map((p, id) =>
    id === 0
      ? TokenType.unknown
      : id === bosTokenId || eosTokenIds.includes(id)
        ? TokenType.control
        : byteOfPiece(p) !== undefined
          ? TokenType.byte
          : TokenType.normal,
  );
  return {
    kind: 'sentencepiece',
    pieces,
    scores,
    types,
    bosTokenId,
    eosTokenIds,
    unkTokenId: 0,
    addDummyPrefix: true,
    byteFallback: true,
    spaceChar: ' ',
    // run.c never reads special tokens out of the text.
    parseSpecial: false,
    addBos: true,
  };
}

export function floatCount(h: Llama2cHeader): number {
  const kv = (h.nKvHeads * h.dim) / h.nHeads;
  const headDim = h.dim / h.nHeads;
  const perLayer = 2 * h.dim + h.dim * h.dim * 2 + kv * h.dim * 2 + 3 * h.hiddenDim * h.dim;
  return (
    h.vocabSize * h.dim +
    h.nLayers * perLayer +
    h.dim +
    h.seqLen * headDim +
    (h.sharedClassifier ? 0 : h.vocabSize * h.dim)
  );
}

/** Slices the checkpoint's float32 arrays into per-layer weights (the order of run.c's `memory_map_weights`). */
export function llama2cWeights(bytes: Uint8Array, h: Llama2cHeader): LlamaWeights {
  const floats = new Float32Array(
    bytes.buffer.slice(bytes.byteOffset + HEADER_BYTES, bytes.byteOffset + bytes.byteLength),
  );
  let at = 0;
  const take = (n: number): Float32Array => floats.subarray(at, (at += n));
  const L = h.nLayers;
  const dim = h.dim;
  const kv = (h.nKvHeads * dim) / h.nHeads;
  const headDim = dim / h.nHeads;
  const perLayer = (n: number): Float32Array[] => {
    const all = take(L * n);
    return Array.from({ length: L }, (_, l) => all.subarray(l * n, (l + 1) * n));
  };
  const tokenEmbedding = take(h.vocabSize * dim);
  const attnNorm = perLayer(dim);
  const q = perLayer(dim * dim);
  const k = perLayer(kv * dim);
  const v = perLayer(kv * dim);
  const o = perLayer(dim * dim);
  const ffnNorm = perLayer(dim);
  const gate = perLayer(h.hiddenDim * dim);
  const down = perLayer(dim * h.hiddenDim);
  const up = perLayer(h.hiddenDim * dim);
  const finalNorm = take(dim);
  take(h.seqLen * headDim); // legacy RoPE tables (cos, sin), unused
  const weights: LlamaWeights = {
    tokenEmbedding,
    layers: Array.from({ length: L }, (_, l) => ({
      attnNorm: attnNorm[l]!,
      q: q[l]!,
      k: k[l]!,
      v: v[l]!,
      o: o[l]!,
      ffnNorm: ffnNorm[l]!,
      gate: gate[l]!,
      up: up[l]!,
      down: down[l]!,
    })),
    finalNorm,
  };
  if (!h.sharedClassifier) weights.lmHead = take(h.vocabSize * dim);
  return weights;
}
