import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { onnxFormat } from '@nucleus/plugin-format-onnx';
import type { ModelSource } from '@nucleus/sdk';

const root = mkdtempSync(join(tmpdir(), 'format-onnx-'));
const folder = (name: string, files: string[]): ModelSource => {
  const path = join(root, name);
  for (const f of files) {
    mkdirSync(join(path, f, '..'), { recursive: true });
    writeFileSync(join(path, f), '{}');
  }
  mkdirSync(path, { recursive: true });
  return { source: name, path, type: 'directory' };
};
const file = (name: string): ModelSource => {
  writeFileSync(join(root, name), 'x');
  return { source: name, path: join(root, name), type: 'file' };
};

describe('format-onnx: which sources it claims', () => {
  it('an export folder (config.json and a tokenizer) is an LLM that ships its own graph', async () => {
    for (const tokenizer of ['tokenizer.json', 'tokenizer_config.json']) {
      const match = await onnxFormat.detect(folder(`export-${tokenizer}`, ['config.json', tokenizer, 'model.onnx']));
      assert.deepEqual([match?.kind, match?.confidence, match?.buildsGraph], ['llm', 0.9, false]);
    }
  });

  it('an .onnx file, a version folder and a folder of versions are tensor models', async () => {
    assert.equal((await onnxFormat.detect(file('classifier.onnx')))?.kind, 'tensor');
    assert.equal((await onnxFormat.detect(folder('version', ['model.onnx'])))?.kind, 'tensor');
    assert.equal((await onnxFormat.detect(folder('versions', ['1/model.onnx', '2/model.onnx'])))?.kind, 'tensor');
  });

  it('names PyTorch pickles and what to convert them to, and ignores what is not ONNX', async () => {
    for (const name of ['model.pth', 'model.pt', 'last.ckpt']) {
      const refused = await onnxFormat.detect(file(name));
      assert.equal(refused?.confidence, 0);
      assert.match(
        refused!.reason,
        /PyTorch checkpoint: pickles are not loaded.*torch\.onnx\.export.*convert_hf_to_gguf/,
      );
    }
    assert.equal(await onnxFormat.detect(file('notes.txt')), undefined);
    assert.equal(await onnxFormat.detect(folder('empty', [])), undefined);
  });
});
