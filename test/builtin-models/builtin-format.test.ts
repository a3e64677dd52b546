import assert from 'node:assert/strict';
import { createLogger } from '@nucleus/core/internal/kernel/logger';
import { builtinFormat, ensureTinyLlama, onnxFormat, TEST_MODEL_CACHE, testFormats } from '../helpers/llm.js';
import { ModelFormats } from '@nucleus/core';

const logger = createLogger({ level: 'silent' });

describe("the builtin format: the tiny Llama's own folder", () => {
  it('claims the folder over the onnx format, and builds the graph itself', async () => {
    const dir = await ensureTinyLlama();
    const formats = new ModelFormats([onnxFormat, builtinFormat]);
    const resolved = await formats.resolve(dir);
    assert.deepEqual(
      [resolved.format?.name, resolved.match.kind, resolved.match.buildsGraph],
      ['builtin', 'llm', true],
    );
    // Without the builtin format the same folder is an export folder like any other.
    assert.equal((await testFormats.resolve(dir)).format?.name, 'onnx');
  });

  it('loads what an export-folder load of the same folder gives, and its contrib graph when asked', async () => {
    const dir = await ensureTinyLlama();
    const context = { name: 'tiny-llama', cacheDir: TEST_MODEL_CACHE, options: {}, logger };
    const asExport = await testFormats.loadLlm(dir, context);
    const builtin = await new ModelFormats([builtinFormat]).loadLlm(dir, context);
    assert.deepEqual(builtin.config, asExport.config);
    assert.deepEqual(builtin.tokenizer, asExport.tokenizer);
    assert.equal(builtin.chatTemplate, asExport.chatTemplate);
    assert.equal(builtin.onnxPath, asExport.onnxPath);
    const contrib = await new ModelFormats([builtinFormat]).loadLlm(dir, { ...context, graphStyle: 'contrib' });
    assert.equal(contrib.config.graphStyle, 'contrib');
    assert.ok(contrib.config.contribIo);
    assert.notEqual(contrib.onnxPath, asExport.onnxPath);
  });
});
