import type { NucleusError } from '@nucleus/sdk';
import assert from 'node:assert/strict';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import {
  createTokenizer,
  GgufFormatError,
  inspectGguf,
  loadLlm,
  readGguf,
  readTensorF32,
  sha256File,
  UnsupportedModelError,
} from '../helpers/llm.js';
import { tempDir } from '../helpers/paths.js';
import { DecoderRunner, maxAbsDiff } from './decoder-runner.js';
import { GGML, TEST_ARCH, TEST_TEMPLATE, testVocab, writeTestLlamaGguf } from './gguf-fixtures.js';
import { f32Bytes, m, q8Bytes, writeGguf, type Meta } from './gguf-writer.js';
import { requireStories, STORIES_DIR } from './llm-module.js';
import { referenceLogits } from './reference-llama.js';

async function refusal(path: string): Promise<UnsupportedModelError> {
  const err = await loadLlm(path, { cacheDir: join(path, '..', 'cache') }).then(
    () => assert.fail('loaded'),
    (e: unknown) => e,
  );
  assert.ok(err instanceof UnsupportedModelError, String(err));
  return err;
}

describe('GGUF', () => {
  let dir: string;
  before(() => {
    dir = tempDir('llm-gguf');
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  describe('reader', () => {
    const everyType: Record<string, Meta> = {
      'general.alignment': m.u32(64),
      'test.u8': { t: 'u8', v: 250 },
      'test.i8': { t: 'i8', v: -5 },
      'test.u16': { t: 'u16', v: 65000 },
      'test.i16': { t: 'i16', v: -30000 },
      'test.u32': m.u32(4000000000),
      'test.i32': m.i32(-2000000000),
      'test.f32': m.f32(0.25),
      'test.f64': { t: 'f64', v: Math.PI },
      'test.u64': { t: 'u64', v: 2n ** 63n + 5n },
      'test.i64': { t: 'i64', v: -(2n ** 40n) },
      'test.bool': m.bool(true),
      'test.str': m.str('héllo 🙂'),
      'test.strs': m.strs(['a', '', 'ü']),
      'test.nested': { t: 'arr', of: 'arr', v: [m.i32s([1, 2]), m.i32s([])] },
    };

    it('parses metadata of every value type (arrays of arrays too), tensor infos and general.alignment', () => {
      const path = join(dir, 'types.gguf');
      const a = Float32Array.from({ length: 3 }, (_, i) => i + 0.5);
      const q = q8Bytes(Float32Array.from({ length: 64 }, (_, i) => Math.sin(i)));
      writeGguf(
        path,
        everyType,
        [
          { name: 'a', dims: [3], type: GGML.F32, data: f32Bytes(a) },
          { name: 'q', dims: [32, 2], type: GGML.Q8_0, data: q.bytes },
        ],
        { alignment: 64 },
      );
      const f = readGguf(path);
      assert.equal(f.version, 3);
      assert.equal(f.alignment, 64);
      assert.equal(f.dataOffset % 64, 0);
      const md = Object.fromEntries(f.metadata);
      assert.deepEqual(md, {
        'general.alignment': 64,
        'test.u8': 250,
        'test.i8': -5,
        'test.u16': 65000,
        'test.i16': -30000,
        'test.u32': 4000000000,
        'test.i32': -2000000000,
        'test.f32': 0.25,
        'test.f64': Math.PI,
        'test.u64': 2n ** 63n + 5n,
        'test.i64': -(2n ** 40n),
        'test.bool': true,
        'test.str': 'héllo 🙂',
        'test.strs': ['a', '', 'ü'],
        'test.nested': [[1, 2], []],
      });
      assert.deepEqual(
        f.tensors.map((t) => [t.name, t.dims, t.type, (t.offset - f.dataOffset) % 64]),
        [
          ['a', [3], GGML.F32, 0],
          ['q', [32, 2], GGML.Q8_0, 0],
        ],
      );
      assert.deepEqual(readTensorF32(f, f.tensors[0]!), a);
      assert.deepEqual(readTensorF32(f, f.tensors[1]!), q.values);
    });

    it('reads version 2 and refuses version 1, a wrong magic and a truncated file', () => {
      const v2 = join(dir, 'v2.gguf');
      writeGguf(v2, { 'test.str': m.str('x') }, [], { version: 2 });
      assert.equal(readGguf(v2).metadata.get('test.str'), 'x');
      const v1 = join(dir, 'v1.gguf');
      writeGguf(v1, {}, [], { version: 1 });
      assert.throws(() => readGguf(v1), /GGUF version 1/);
      const bad = join(dir, 'bad.gguf');
      writeFileSync(bad, Buffer.from('GGML0000000000000000000000'));
      assert.throws(
        () => readGguf(bad),
        (e: unknown) => e instanceof GgufFormatError && /bad magic/.test(e.message),
      );
      const cut = join(dir, 'cut.gguf');
      writeGguf(cut, everyType, []);
      writeFileSync(cut, readFileSync(cut).subarray(0, 100));
      assert.throws(() => readGguf(cut), /truncated/);
    });

    it("reads stories260K.gguf's metadata and tensors; its Q8_0 twin dequantizes to within half a quantization step of the F32 weights", function () {
      requireStories(this);
      const f = readGguf(join(STORIES_DIR, 'stories260K.gguf'));
      assert.equal(f.version, 3);
      assert.equal(f.metadata.get('general.architecture'), 'llama');
      assert.equal(f.metadata.get('llama.context_length'), 512);
      assert.equal(f.metadata.get('llama.attention.head_count_kv'), 4);
      assert.equal(f.metadata.get('tokenizer.ggml.model'), 'llama');
      const tokens = f.metadata.get('tokenizer.ggml.tokens') as string[];
      assert.equal(tokens.length, 512);
      assert.equal(tokens[1], '\n<s>\n');
      assert.equal(tokens[403], '▁Once');
      assert.equal((f.metadata.get('tokenizer.ggml.token_type') as number[])[3], 6);
      assert.equal(f.tensors.find((t) => t.name === 'blk.0.attn_k.weight')?.dims.join(','), '64,32');
      assert.ok(!f.tensors.some((t) => t.name === 'output.weight'));

      const q8 = readGguf(join(STORIES_DIR, 'stories260K-q8_0.gguf'));
      const name = 'blk.2.attn_q.weight';
      const exact = readTensorF32(f, f.tensors.find((t) => t.name === name)!);
      const info = q8.tensors.find((t) => t.name === name)!;
      assert.equal(info.type, GGML.Q8_0);
      const deq = readTensorF32(q8, info);
      for (let b = 0; b < exact.length / 32; b++) {
        const block = exact.subarray(b * 32, b * 32 + 32);
        // Rounding to the step, plus the float16 rounding of the step itself (2^-11 relative) times |q| ≤ 127.
        const step = Math.max(...block.map(Math.abs)) / 127;
        assert.ok(maxAbsDiff(block, deq.subarray(b * 32, b * 32 + 32)) <= step * (0.5 + 127 * 2 ** -11), `block ${b}`);
      }
    });
  });

  describe('Llama loading', () => {
    it('builds a graph from F32, F16 and Q8_0 tensors whose logits equal a float64 forward pass of the same weights', async () => {
      const path = join(dir, 'test-llama.gguf');
      const weights = writeTestLlamaGguf(path);
      const cacheDir = join(dir, 'cache');
      const llm = await loadLlm(path, { cacheDir });
      assert.equal(llm.source, 'gguf');
      assert.equal(llm.name, 'test-llama');
      assert.equal(llm.chatTemplate, TEST_TEMPLATE);
      assert.deepEqual([llm.config.bosTokenId, llm.config.eosTokenIds, llm.config.maxContext], [1, [2], 128]);
      const runner = await DecoderRunner.open(llm.onnxPath, llm.config);
      try {
        const tokens = [1, 260, 270, 279, 265, 266];
        const r = await runner.stepGeneric(
          [tokens],
          [tokens.map(() => 1)],
          [tokens.map((_, i) => i)],
          runner.emptyCache(1),
        );
        const ref = referenceLogits(weights, TEST_ARCH, tokens, 'interleaved');
        tokens.forEach((_, s) => assert.ok(maxAbsDiff(runner.row(r, 0, s), ref[s]!) < 1e-4, `position ${s}`));
      } finally {
        await runner.close();
      }
    });

    it('caches the generated graph by the file sha256 and reuses it on the next load', async () => {
      const path = join(dir, 'cached.gguf');
      writeTestLlamaGguf(path);
      const cacheDir = join(dir, 'cache-reuse');
      const first = await loadLlm(path, { cacheDir });
      assert.ok(first.onnxPath.includes(await sha256File(path)));
      const mtime = statSync(first.onnxPath).mtimeMs;
      const second = await loadLlm(path, { cacheDir });
      assert.equal(second.onnxPath, first.onnxPath);
      assert.equal(statSync(second.onnxPath).mtimeMs, mtime);
      // A changed file is hashed again and gets its own graph.
      writeTestLlamaGguf(path, { metadata: { 'general.name': m.str('test-llama-changed') } });
      const changed = await loadLlm(path, { cacheDir });
      assert.notEqual(changed.onnxPath, first.onnxPath);
      assert.ok(changed.onnxPath.includes(await sha256File(path)));
      const contrib = await loadLlm(path, { cacheDir, graphStyle: 'contrib' });
      assert.notEqual(contrib.onnxPath, changed.onnxPath);
      assert.equal(contrib.config.graphStyle, 'contrib');
      assert.equal(contrib.config.contribIo?.seqlensK, 'seqlens_k');
    });

    it('takes the SentencePiece tokenizer from the metadata', () => {
      const path = join(dir, 'tok.gguf');
      writeTestLlamaGguf(path);
      const spec = inspectGguf(path).tokenizer;
      assert.equal(spec.kind, 'sentencepiece');
      const tokenizer = createTokenizer(spec);
      const { pieces } = testVocab();
      const ids = tokenizer.encode('héllo abc', { addBos: true });
      assert.deepEqual(
        ids.map((id) => pieces[id]),
        ['<s>', '▁héllo', '▁', 'a', 'bc'],
      );
      assert.equal(tokenizer.decode(ids), 'héllo abc');
    });
  });

  describe('refusals list everything unsupported at once', () => {
    it('architecture, tensor type, RoPE scaling and tokenizer model', async () => {
      const path = join(dir, 'unsupported.gguf');
      writeTestLlamaGguf(path, {
        metadata: {
          'general.architecture': m.str('gemma'),
          'gemma.rope.scaling.type': m.str('dynamic'),
          'tokenizer.ggml.model': m.str('bert'),
        },
        tensors: (ts) =>
          ts.map((t) =>
            t.name === 'blk.0.attn_q.weight' ? { ...t, type: GGML.IQ2_XXS, data: new Uint8Array(66 * 4) } : t,
          ),
      });
      const err = await refusal(path);
      const text = err.message;
      assert.match(text, /architecture "gemma" \(supported: llama, mistral, qwen2, phi3\)/);
      assert.match(text, /tensor type IQ2_XXS \(1 tensor, e\.g\. blk\.0\.attn_q\.weight; supported: F32, F16, .*Q8_0/);
      assert.match(text, /RoPE scaling "dynamic" \(supported: none, linear, yarn, longrope/);
      assert.match(text, /tokenizer model "bert"/);
      assert.ok(err.problems.length >= 4);
      assert.equal(err.status, 400);
    });

    it('missing and extra tensors, mixture of experts, wrong shapes', async () => {
      const path = join(dir, 'odd-tensors.gguf');
      writeTestLlamaGguf(path, {
        metadata: { 'llama.expert_count': m.u32(8) },
        tensors: (ts) => [
          ...ts
            .filter((t) => t.name !== 'blk.1.ffn_up.weight')
            .map((t) => (t.name === 'output_norm.weight' ? { ...t, dims: [16, 2] } : t)),
          { name: 'blk.0.attn_output.bias', dims: [32], type: GGML.F32, data: new Uint8Array(128) },
        ],
      });
      const text = (await refusal(path)).message;
      assert.match(text, /missing tensors: blk\.1\.ffn_up\.weight/);
      assert.match(text, /tensors outside the llama graph .*blk\.0\.attn_output\.bias/);
      assert.match(text, /mixture of experts \(8 experts\)/);
      assert.match(text, /tensor output_norm\.weight is \[16, 2\], expected \[32\]/);
    });

    it('a file named .gguf without the GGUF magic is refused by name, with why', async () => {
      const fake = join(dir, 'fake.gguf');
      writeFileSync(fake, 'hello');
      const err = await loadLlm(fake, { cacheDir: join(dir, 'cache') }).then(
        () => assert.fail('loaded'),
        (e: unknown) => e as NucleusError,
      );
      assert.equal(err.code, 'unsupported_model_format');
      assert.match(err.message, /gguf: .*fake\.gguf is named \.gguf but does not start with the GGUF magic/);
    });
  });
});
