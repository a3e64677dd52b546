import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkGgufLimits, GgufFormatError, readGguf, type GgufFile } from '@nucleus/plugin-format-gguf';
import { ggufHeader, v, type RawTensorInfo, type RawValue } from './gguf-bytes.js';

const dir = mkdtempSync(join(tmpdir(), 'format-gguf-limits-'));
let files = 0;

const F32 = 0;
const TENSORS: RawTensorInfo[] = [
  { name: 'token_embd.weight', dims: [8, 4], type: F32, offset: 0 },
  { name: 'blk.0.attn_norm.weight', dims: [8], type: F32, offset: 128 },
];
const BASE: Record<string, RawValue> = {
  'general.architecture': v.str('llama'),
  'llama.block_count': v.u32(1),
  'llama.embedding_length': v.u32(8),
  'llama.attention.head_count': v.u32(2),
  'llama.context_length': v.u32(64),
};

/** A tiny Llama-shaped GGUF: the base metadata with `metadata` over it (undefined drops a key), and its tensors. */
function tiny(
  metadata: Record<string, RawValue | undefined> = {},
  tensors = TENSORS,
  base = BASE,
): { file: GgufFile; bytes: number } {
  const entries = Object.entries({ ...base, ...metadata }).filter((e): e is [string, RawValue] => e[1] !== undefined);
  const last = tensors.at(-1);
  const data = last ? Number(last.offset) + 4 * last.dims.reduce<number>((n, d) => n * Number(d), 1) : 0;
  const bytes = ggufHeader({ metadata: entries, tensors }).pad().zeros(data).bytes();
  const path = join(dir, `f${files++}.gguf`);
  writeFileSync(path, bytes);
  return { file: readGguf(path), bytes: bytes.length };
}

function limitsRefuse(file: GgufFile, why: RegExp): string {
  try {
    checkGgufLimits(file);
  } catch (err) {
    assert.ok(err instanceof GgufFormatError, String(err));
    assert.match(err.message, why);
    assert.deepEqual([err.status, err.code], [400, 'unsupported_model']);
    return err.message;
  }
  assert.fail('checkGgufLimits passed');
}

describe('format-gguf: checkGgufLimits refuses sizes the tensors cannot back', () => {
  it('passes a file whose sizes its tensors back, and a file without an architecture (left to the architecture check)', () => {
    checkGgufLimits(tiny().file);
    checkGgufLimits(tiny({ 'general.architecture': undefined, 'llama.block_count': v.u32(3_000_000) }).file);
  });

  it('a tiny file declaring three million layers', () => {
    const { file, bytes } = tiny({}, [{ name: 'blk.0.attn_norm.weight', dims: [4], type: F32, offset: 0 }], {
      'general.architecture': v.str('llama'),
      'llama.block_count': v.u32(3_000_000),
    });
    assert.ok(bytes < 200, `${bytes} bytes`);
    limitsRefuse(file, /llama\.block_count is 3000000, but the file holds tensors for only 1 layer \(blk\.N\)/);
    const none = tiny({ 'llama.block_count': v.u64(2n ** 40n) }, TENSORS.slice(0, 1)).file;
    limitsRefuse(none, /llama\.block_count is 1099511627776, but the file holds no layer \(blk\.N\) tensors/);
  });

  it('an embedding length other than token_embd.weight holds, a head count larger than any tensor dimension', () => {
    limitsRefuse(
      tiny({ 'llama.embedding_length': v.u32(4096) }).file,
      /llama\.embedding_length is 4096, but token_embd\.weight is \[8, 4\] \(embedding length 8\)/,
    );
    limitsRefuse(
      tiny({ 'llama.attention.head_count': v.u32(1_000_000) }).file,
      /llama\.attention\.head_count is 1000000, larger than any tensor dimension in the file \(the largest is 8\)/,
    );
    limitsRefuse(
      tiny({ 'llama.attention.head_count_kv': { type: 9, write: (b) => b.u32(4).u64(2).u32(2).u32(5_000_000) } }).file,
      /llama\.attention\.head_count_kv is up to 5000000 \(per layer\), larger than any tensor dimension/,
    );
    limitsRefuse(
      tiny({ 'llama.feed_forward_length': v.u64(2n ** 62n) }).file,
      /llama\.feed_forward_length is 4611686018427387904, larger than any tensor dimension/,
    );
  });

  it('a vocabulary larger than token_embd.weight embeds', () => {
    const tokens = v.arr(
      8,
      6,
      ['a', 'b', 'c', 'd', 'e', 'f'].map((t) => v.str(t)),
    );
    limitsRefuse(
      tiny({ 'tokenizer.ggml.tokens': tokens }).file,
      /tokenizer\.ggml\.tokens holds 6 tokens, but token_embd\.weight \[8, 4\] embeds only 4/,
    );
    limitsRefuse(
      tiny({ 'llama.vocab_size': v.u64(2n ** 40n) }).file,
      /llama\.vocab_size is 1099511627776, larger than any tensor dimension/,
    );
  });

  it('a context length whose RoPE tables would outweigh the weights', () => {
    limitsRefuse(
      tiny({ 'llama.context_length': v.u32(2 ** 31) }).file,
      /llama\.context_length is 2147483648: RoPE tables for that many positions \(× head dim 4\) would hold more values than the 40 weights/,
    );
    // Up to 2^24 table values are allowed whatever the file's size: small test models keep real context lengths.
    checkGgufLimits(tiny({ 'llama.context_length': v.u32(2 ** 22) }).file);
  });

  it('lists every problem in one message', () => {
    const message = limitsRefuse(
      tiny({ 'llama.block_count': v.u32(3_000_000), 'llama.context_length': v.u64(2n ** 53n) }).file,
      /sizes the tensors cannot back: /,
    );
    assert.match(message, /llama\.block_count is 3000000.*; llama\.context_length is 9007199254740992/);
  });
});
