import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ggufFormat } from '@nucleus/plugin-format-gguf';
import type { ModelSource } from '@nucleus/sdk';

const dir = mkdtempSync(join(tmpdir(), 'format-gguf-'));
const file = (name: string, bytes: string | Uint8Array): ModelSource => {
  const path = join(dir, name);
  writeFileSync(path, bytes);
  return { source: name, path, type: 'file' };
};

describe('format-gguf: which sources it claims', () => {
  it('claims a file that starts with the GGUF magic, whatever its name, and builds its graph', async () => {
    for (const name of ['model.gguf', 'weights.bin']) {
      const match = await ggufFormat.detect(file(name, 'GGUF\u0003\u0000\u0000\u0000'));
      assert.deepEqual(match, { confidence: 1, reason: 'starts with the GGUF magic', kind: 'llm', buildsGraph: true });
    }
  });

  it('turns down a .gguf file without the magic, saying why, and ignores everything else', async () => {
    const refused = await ggufFormat.detect(file('truncated.gguf', 'GG'));
    assert.equal(refused?.confidence, 0);
    assert.match(refused!.reason, /named \.gguf but does not start with the GGUF magic bytes/);
    assert.equal(await ggufFormat.detect(file('notes.txt', 'hello')), undefined);
    const folder = join(dir, 'folder.gguf');
    mkdirSync(folder);
    assert.equal(await ggufFormat.detect({ source: 'folder.gguf', path: folder, type: 'directory' }), undefined);
  });
});
