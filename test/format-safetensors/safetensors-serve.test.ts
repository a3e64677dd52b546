import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, readdirSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { TestKernel } from '@nucleus/sdk/testing';
import { ModelFormats } from '@nucleus/core';
import { ggufFormat } from '@nucleus/plugin-format-gguf';
import { llama2cFormat } from '@nucleus/plugin-format-llama2c';
import { onnxFormat } from '@nucleus/plugin-format-onnx';
import { loadSafetensors, safetensorsFormat } from '@nucleus/plugin-format-safetensors';
import { ensureTinyLlama, loadOnnxFolder } from '../helpers/llm.js';
import { tempDir } from '../helpers/paths.js';
import { chatOnce, followServer, serveFailure, spawnServe, stopServer } from '../helpers/server-child.js';
import { DecoderRunner, maxAbsDiff } from '../llm-formats/decoder-runner.js';
import { writeTestLlamaGguf } from '../llm-formats/gguf-fixtures.js';
import { admin, errorOf, startLifecycleKernel, streamCompletion } from '../model-lifecycle/lifecycle-fixtures.js';
import { writeTinyLlamaCheckpoint } from './safetensors-fixtures.js';

const formats = new ModelFormats([ggufFormat, onnxFormat, llama2cFormat, safetensorsFormat]);

/** The tiny Llama's logits for a few tokens, from a graph the loader under test produced. */
async function logitsOf(onnxPath: string, config: Parameters<typeof DecoderRunner.open>[1]): Promise<Float32Array> {
  const runner = await DecoderRunner.open(onnxPath, config);
  try {
    const ids = [296, 40, 41, 80, 120, 7, 9];
    const r = await runner.stepGeneric([ids], [ids.map(() => 1)], [ids.map((_, i) => i)], runner.emptyCache(1));
    return Float32Array.from(r.logits);
  } finally {
    await runner.close();
  }
}

describe('safetensors checkpoint folders: detection, the tiny Llama, bad files through a running server, nucleus serve', function () {
  this.timeout(300_000);
  const dir = tempDir('safetensors-serve');
  const cacheDir = join(dir, 'cache');
  const tiny = writeTinyLlamaCheckpoint(join(dir, 'tiny-f32'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('claims checkpoint folders, and leaves ONNX export folders, GGUF files and lone .safetensors files alone', async () => {
    assert.equal((await formats.resolve(tiny)).format?.name, 'safetensors');
    const exportDir = await ensureTinyLlama(join(dir, 'export-cache'));
    assert.equal((await formats.resolve(exportDir)).format?.name, 'onnx');
    // An export folder that also ships safetensors weights (as Optimum exports can) stays format-onnx's.
    const both = join(dir, 'export-with-weights');
    mkdirSync(both);
    for (const f of readdirSync(exportDir)) copyFileSync(join(exportDir, f), join(both, f));
    copyFileSync(join(tiny, 'model.safetensors'), join(both, 'model.safetensors'));
    assert.equal((await formats.resolve(both)).format?.name, 'onnx');
    const gguf = join(dir, 'tiny.gguf');
    writeTestLlamaGguf(gguf);
    assert.equal((await formats.resolve(gguf)).format?.name, 'gguf');
    await assert.rejects(
      formats.resolve(join(tiny, 'model.safetensors')),
      /safetensors: .* is one safetensors file: serve the folder that holds it with config\.json/,
    );
  });

  it('the tiny Llama as a checkpoint computes what its ONNX export computes (F32 exactly, F16 and BF16 near)', async () => {
    const exported = await loadOnnxFolder(await ensureTinyLlama(join(dir, 'export-cache')));
    const expected = await logitsOf(exported.onnxPath, exported.config);
    const bounds = { F32: 1e-4, F16: 0.05, BF16: 0.5 } as const;
    for (const dtype of ['F32', 'F16', 'BF16'] as const) {
      const folder = dtype === 'F32' ? tiny : writeTinyLlamaCheckpoint(join(dir, `tiny-${dtype}`), dtype);
      const loaded = await loadSafetensors(folder, { cacheDir, graphStyle: 'generic' });
      assert.deepEqual(loaded.tokenizer, exported.tokenizer, `${dtype}: the folder's tokenizer`);
      assert.equal(loaded.chatTemplate, exported.chatTemplate);
      const diff = maxAbsDiff(await logitsOf(loaded.onnxPath, loaded.config), expected);
      assert.ok(diff < bounds[dtype], `${dtype}: max |Δ logit| ${diff}`);
      if (dtype !== 'F32') assert.ok(diff > 0, `${dtype}: the weights were rounded`);
    }
  });

  /** A checkpoint folder made bad by `spoil`, and what the error must say. */
  const hostile: { label: string; spoil: (folder: string) => void; says: RegExp }[] = [
    {
      label: 'a truncated safetensors header',
      spoil: (f) => truncateSync(join(f, 'model.safetensors'), 5),
      says: /model\.safetensors: truncated header: the file has 5 bytes, fewer than the 8-byte header length/,
    },
    {
      label: 'a header claiming more bytes than the file holds',
      spoil: (f) => {
        const header = Buffer.alloc(8);
        header.writeBigUInt64LE(1_000_000n);
        writeFileSync(join(f, 'model.safetensors'), Buffer.concat([header, Buffer.from('{"x": {}}')]));
      },
      says: /model\.safetensors: the header length 1000000 is larger than the file \(17 bytes\)/,
    },
    {
      label: 'an unsupported architecture',
      spoil: (f) => {
        const config = join(f, 'config.json');
        writeFileSync(config, JSON.stringify({ architectures: ['GPTNeoXForCausalLM'], hidden_size: 64 }));
      },
      says: /architecture "GPTNeoXForCausalLM" in config\.json \(supported: LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM\)/,
    },
    {
      label: 'a missing tensor',
      spoil: (f) => {
        const config = JSON.parse(readFileSync(join(f, 'config.json'), 'utf8')) as Record<string, unknown>;
        writeFileSync(join(f, 'config.json'), JSON.stringify({ ...config, num_hidden_layers: 3 }));
      },
      says: /missing tensors: model\.layers\.2\.input_layernorm\.weight/,
    },
  ];
  const bad = hostile.map((h, i) => {
    const folder = writeTinyLlamaCheckpoint(join(dir, `bad-${i}`));
    h.spoil(folder);
    return folder;
  });

  it('a run-time load of a bad folder answers 422 naming the problem; the loaded models keep answering', async () => {
    let kit: TestKernel | undefined;
    try {
      kit = await startLifecycleKernel();
      const good = join(dir, 'good.gguf');
      writeTestLlamaGguf(good);
      const loaded = await admin(kit, '/admin/models', { method: 'POST', body: { name: 'good', source: good } });
      assert.equal(loaded.status, 201, JSON.stringify(loaded.body));
      // A checkpoint loads at run time too, quantized by the format at load.
      const st = await admin(kit, '/admin/models', {
        method: 'POST',
        body: { name: 'st', source: tiny, quantize: 'int8' },
      });
      assert.equal(st.status, 201, JSON.stringify(st.body));
      const before = await streamCompletion(kit, { model: 'good', prompt: 'the abc', max_tokens: 6 });
      const beforeSt = await streamCompletion(kit, {
        model: 'st',
        prompt: 'Once upon a time',
        max_tokens: 6,
        ignore_eos: true,
      });
      assert.ok(before.complete && beforeSt.complete, JSON.stringify([before, beforeSt]));
      assert.ok(beforeSt.text.length > 0, JSON.stringify(beforeSt));

      for (const [i, h] of hostile.entries()) {
        const res = await admin(kit, '/admin/models', { method: 'POST', body: { name: `bad-${i}`, source: bad[i] } });
        assert.deepEqual(
          [res.status, errorOf(res).code],
          [422, 'model_load_failed'],
          `${h.label}: ${JSON.stringify(res.body)}`,
        );
        assert.match(errorOf(res).message, h.says, h.label);
        const after = await streamCompletion(kit, { model: 'good', prompt: 'the abc', max_tokens: 6 });
        assert.deepEqual([after.complete, after.text], [true, before.text], `after ${h.label}`);
        const afterSt = await streamCompletion(kit, {
          model: 'st',
          prompt: 'Once upon a time',
          max_tokens: 6,
          ignore_eos: true,
        });
        assert.deepEqual([afterSt.complete, afterSt.text], [true, beforeSt.text], `st after ${h.label}`);
      }
    } finally {
      await kit?.stop();
    }
  });

  it('`nucleus serve --model NAME=FOLDER` serves chat completions from the checkpoint; a bad folder exits with code 2', async () => {
    const child = spawnServe(`tiny=${tiny}`, { NUCLEUS_CACHE_DIR: join(dir, 'serve-cache') });
    try {
      const url = await followServer(child, 120_000).url;
      const { status, body } = await chatOnce(url, 'tiny', 'Tell me a story.', 8);
      assert.equal(status, 200, JSON.stringify(body));
      assert.equal(body.choices?.[0]?.message.role, 'assistant');
      assert.ok((body.usage?.completion_tokens ?? 0) > 0, JSON.stringify(body));
    } finally {
      if (child.exitCode === null && child.signalCode === null) assert.equal(await stopServer(child), 0);
    }
    const failed = await serveFailure(`x=${bad[2]}`, { NUCLEUS_CACHE_DIR: join(dir, 'serve-cache') });
    assert.equal(failed.code, 2, failed.err);
    assert.match(failed.err, hostile[2]!.says);
  });
});
