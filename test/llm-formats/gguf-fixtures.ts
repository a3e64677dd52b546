// A tiny Llama written as GGUF by the test itself: mixed F32/F16/Q8_0 tensors, a SentencePiece vocabulary with byte
// fallback and a chat template, with the float32 weights the file's bytes stand for.
import type { LlamaArchitecture, LlamaWeights } from '../helpers/llm.js';
import { SeededRandom } from '@nucleus/sdk';
import { f16Bytes, f32Bytes, m, q8Bytes, writeGguf, type Meta, type RawTensor } from './gguf-writer.js';

/** ggml type numbers used here. */
export const GGML = { F32: 0, F16: 1, Q8_0: 8, Q4_K: 12, IQ2_XXS: 16 } as const;

/** Text pieces of the test vocabulary after `<unk>`, `<s>`, `</s>`, `<|user|>` and the 256 byte tokens; later = lower score. */
export const TEXT_PIECES = [
  '▁héllo',
  '▁hé',
  'llo',
  'll',
  '▁h',
  '▁',
  'h',
  'é',
  'l',
  'o',
  'e',
  'a',
  'b',
  'c',
  'bc',
  'ab',
  '▁the',
  'the',
  't',
  'i',
  'th',
];

/** The test vocabulary: pieces, scores, token types. */
export function testVocab(): { pieces: string[]; scores: number[]; types: number[] } {
  const pieces = ['<unk>', '<s>', '</s>', '<|user|>'];
  const types = [2, 3, 3, 3];
  for (let b = 0; b < 256; b++) {
    pieces.push(`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`);
    types.push(6);
  }
  const scores = pieces.map(() => 0);
  TEXT_PIECES.forEach((p, i) => {
    pieces.push(p);
    types.push(1);
    scores.push(-i);
  });
  // 'bc' outranks 'ab', so "abc" splits as a + bc.
  scores[pieces.indexOf('bc')] = 0.5;
  return { pieces, scores, types };
}

/** Architecture of the test GGUF. */
export const TEST_ARCH: LlamaArchitecture = {
  vocabSize: testVocab().pieces.length,
  hiddenSize: 32,
  intermediateSize: 64,
  numLayers: 2,
  numHeads: 4,
  numKvHeads: 2,
  headDim: 8,
  rmsNormEps: 1e-5,
  ropeTheta: 10000,
  maxPositions: 128,
};

/** The chat template the test GGUF carries. */
export const TEST_TEMPLATE = "{% for m in messages %}<|user|>{{ m['content'] }}{% endfor %}";

/** Writes the test GGUF to `path`; returns the weights its (quantized) bytes decode to. */
export function writeTestLlamaGguf(
  path: string,
  overrides: { metadata?: Record<string, Meta>; tensors?: (t: RawTensor[]) => RawTensor[] } = {},
): LlamaWeights {
  const a = TEST_ARCH;
  const rng = new SeededRandom(11);
  const H = a.hiddenSize;
  const tensors: RawTensor[] = [];
  const add = (name: string, dims: number[], kind: 'F32' | 'F16' | 'Q8_0', values: Float32Array): Float32Array => {
    if (kind === 'F32') {
      tensors.push({ name, dims, type: GGML.F32, data: f32Bytes(values) });
      return values;
    }
    const enc = kind === 'F16' ? f16Bytes(values) : q8Bytes(values);
    tensors.push({ name, dims, type: GGML[kind], data: enc.bytes });
    return enc.values;
  };
  // ggml dims: [in, out] (row length first).
  const matrix = (name: string, out: number, inDim: number, kind: 'F32' | 'F16' | 'Q8_0'): Float32Array =>
    add(name, [inDim, out], kind, rng.normals(out * inDim, 1 / Math.sqrt(inDim)));
  const norm = (name: string): Float32Array =>
    add(
      name,
      [H],
      'F32',
      Float32Array.from(rng.normals(H, 0.1), (v) => 1 + v),
    );
  const q = a.numHeads * a.headDim;
  const kv = a.numKvHeads * a.headDim;
  const tokenEmbedding = add('token_embd.weight', [H, a.vocabSize], 'Q8_0', rng.normals(a.vocabSize * H, 1));
  const layers = Array.from({ length: a.numLayers }, (_, l) => ({
    attnNorm: norm(`blk.${l}.attn_norm.weight`),
    q: matrix(`blk.${l}.attn_q.weight`, q, H, 'F16'),
    k: matrix(`blk.${l}.attn_k.weight`, kv, H, 'F16'),
    v: matrix(`blk.${l}.attn_v.weight`, kv, H, 'Q8_0'),
    o: matrix(`blk.${l}.attn_output.weight`, H, q, 'F16'),
    ffnNorm: norm(`blk.${l}.ffn_norm.weight`),
    gate: matrix(`blk.${l}.ffn_gate.weight`, a.intermediateSize, H, 'Q8_0'),
    up: matrix(`blk.${l}.ffn_up.weight`, a.intermediateSize, H, 'Q8_0'),
    down: matrix(`blk.${l}.ffn_down.weight`, H, a.intermediateSize, 'F32'),
  }));
  const finalNorm = norm('output_norm.weight');
  const lmHead = matrix('output.weight', a.vocabSize, H, 'F16');
  const vocab = testVocab();
  const metadata: Record<string, Meta> = {
    'general.architecture': m.str('llama'),
    'general.name': m.str('test-llama'),
    'general.alignment': m.u32(64),
    'llama.context_length': m.u32(a.maxPositions),
    'llama.embedding_length': m.u32(H),
    'llama.block_count': m.u32(a.numLayers),
    'llama.feed_forward_length': m.u32(a.intermediateSize),
    'llama.attention.head_count': m.u32(a.numHeads),
    'llama.attention.head_count_kv': m.u32(a.numKvHeads),
    'llama.attention.layer_norm_rms_epsilon': m.f32(a.rmsNormEps),
    'llama.rope.dimension_count': m.u32(a.headDim),
    'llama.rope.freq_base': m.f32(a.ropeTheta),
    'tokenizer.ggml.model': m.str('llama'),
    'tokenizer.ggml.tokens': m.strs(vocab.pieces),
    'tokenizer.ggml.scores': m.f32s(vocab.scores),
    'tokenizer.ggml.token_type': m.i32s(vocab.types),
    'tokenizer.ggml.bos_token_id': m.u32(1),
    'tokenizer.ggml.eos_token_id': m.u32(2),
    'tokenizer.ggml.unknown_token_id': m.u32(0),
    'tokenizer.ggml.padding_token_id': m.u32(0xffffffff),
    'tokenizer.chat_template': m.str(TEST_TEMPLATE),
    ...(overrides.metadata ?? {}),
  };
  writeGguf(path, metadata, overrides.tensors ? overrides.tensors(tensors) : tensors, { alignment: 64 });
  return { tokenEmbedding, layers, finalNorm, lmHead };
}
