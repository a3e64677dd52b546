// A Llama-shaped GGUF large enough that its weights, not a runtime's fixed costs, decide memory and speed: random
// blocks in llama-quantize's Q4_K_M mix (Q4_K matrices, Q6_K for attn_v, ffn_down and the output), the 512-token
// vocabulary of the oracle's quant-zoo files. Its numbers mean nothing; its bytes are laid out as real files are.
import { existsSync, statSync } from 'node:fs';
import { float16Bits } from '@nucleus/sdk/onnx';
import { SeededRandom } from '@nucleus/sdk';
import { ggufMeta, readGguf, writeGguf, type Meta, type RawTensor } from '@nucleus/plugin-format-gguf';

/** The shape written; the defaults make a file of about 460 MB. */
export interface SyntheticShape {
  layers: number;
  hidden: number;
  feedForward: number;
  heads: number;
  kvHeads: number;
}

const DEFAULT_SHAPE: SyntheticShape = { layers: 16, hidden: 2048, feedForward: 5632, heads: 16, kvHeads: 4 };
const Q4_K = { type: 12, bytes: 144 };
const Q6_K = { type: 14, bytes: 210 };

/**
 * Writes the file unless it is there already; `vocabularyFrom` is a GGUF whose `tokenizer.*` keys are copied (a
 * SentencePiece vocabulary). Returns the path.
 */
export function ensureSyntheticGguf(path: string, vocabularyFrom: string, shape = DEFAULT_SHAPE): string {
  if (existsSync(path) && statSync(path).size > 0) return path;
  const source = readGguf(vocabularyFrom);
  const vocab = (source.metadata.get('tokenizer.ggml.tokens') as string[]).length;
  const metadata: Record<string, Meta> = {
    'general.architecture': ggufMeta.str('llama'),
    'general.name': ggufMeta.str('synthetic-q4_k_m'),
    'llama.block_count': ggufMeta.u32(shape.layers),
    'llama.context_length': ggufMeta.u32(2048),
    'llama.embedding_length': ggufMeta.u32(shape.hidden),
    'llama.feed_forward_length': ggufMeta.u32(shape.feedForward),
    'llama.attention.head_count': ggufMeta.u32(shape.heads),
    'llama.attention.head_count_kv': ggufMeta.u32(shape.kvHeads),
    'llama.rope.freq_base': ggufMeta.f32(10000),
    'llama.attention.layer_norm_rms_epsilon': ggufMeta.f32(1e-5),
  };
  for (const [key, value] of source.metadata) {
    if (!key.startsWith('tokenizer.')) continue;
    if (typeof value === 'string') metadata[key] = ggufMeta.str(value);
    else if (typeof value === 'boolean') metadata[key] = ggufMeta.bool(value);
    else if (typeof value === 'number' || typeof value === 'bigint') metadata[key] = ggufMeta.u32(Number(value));
    else if (key === 'tokenizer.ggml.tokens') metadata[key] = ggufMeta.strs(value as string[]);
    else if (key === 'tokenizer.ggml.scores') metadata[key] = ggufMeta.f32s(value as number[]);
    else metadata[key] = ggufMeta.i32s(value as number[]);
  }
  const rng = new SeededRandom(20261207);
  // Random bytes are valid K-quant blocks once their super-block scales are sane halves.
  const blocks = (rows: number, cols: number, kind: typeof Q4_K): Uint8Array => {
    const n = (rows * cols) / 256;
    const data = new Uint8Array(n * kind.bytes);
    for (let i = 0; i < data.length; i++) data[i] = rng.int(256);
    for (let b = 0; b < n; b++) {
      const at = b * kind.bytes + (kind === Q4_K ? 0 : 208);
      const d = float16Bits(0.0005 + rng.uniform(0, 0.001));
      data[at] = d & 0xff;
      data[at + 1] = d >> 8;
      if (kind === Q4_K) {
        const dmin = float16Bits(rng.uniform(0, 0.0005));
        data[at + 2] = dmin & 0xff;
        data[at + 3] = dmin >> 8;
      }
    }
    return data;
  };
  const ones = (n: number): Uint8Array => new Uint8Array(new Float32Array(n).fill(1).buffer);
  const { hidden: H, feedForward: F } = shape;
  const kv = (H / shape.heads) * shape.kvHeads;
  const tensors: RawTensor[] = [
    { name: 'token_embd.weight', dims: [H, vocab], type: Q4_K.type, data: blocks(vocab, H, Q4_K) },
    { name: 'output.weight', dims: [H, vocab], type: Q6_K.type, data: blocks(vocab, H, Q6_K) },
    { name: 'output_norm.weight', dims: [H], type: 0, data: ones(H) },
  ];
  const matrix = (name: string, cols: number, rows: number, kind: typeof Q4_K): RawTensor => ({
    name,
    dims: [cols, rows],
    type: kind.type,
    data: blocks(rows, cols, kind),
  });
  for (let l = 0; l < shape.layers; l++) {
    const p = `blk.${l}`;
    tensors.push(
      { name: `${p}.attn_norm.weight`, dims: [H], type: 0, data: ones(H) },
      { name: `${p}.ffn_norm.weight`, dims: [H], type: 0, data: ones(H) },
      matrix(`${p}.attn_q.weight`, H, H, Q4_K),
      matrix(`${p}.attn_k.weight`, H, kv, Q4_K),
      matrix(`${p}.attn_v.weight`, H, kv, Q6_K),
      matrix(`${p}.attn_output.weight`, H, H, Q4_K),
      matrix(`${p}.ffn_gate.weight`, H, F, Q4_K),
      matrix(`${p}.ffn_up.weight`, H, F, Q4_K),
      matrix(`${p}.ffn_down.weight`, F, H, Q6_K),
    );
  }
  writeGguf(path, metadata, tensors);
  return path;
}
