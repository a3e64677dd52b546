import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { llama2cFormat, tokenizerCandidates } from '@nucleus/plugin-format-llama2c';
import type { ModelSource } from '@nucleus/sdk';

const dir = mkdtempSync(join(tmpdir(), 'format-llama2c-'));

// dim 8, hidden 16, 1 layer, 2 heads, 2 kv heads, vocab 4 (shared classifier), 4 positions.
const HEADER = [8, 16, 1, 2, 2, 4, 4];
function floats(): number {
  const [dim, hidden, layers, , , vocab, seq] = HEADER as [number, number, number, number, number, number, number];
  const head = dim / 2;
  return vocab * dim + layers * (2 * dim + 4 * dim * dim + 3 * dim * hidden) + dim + seq * head;
}
function checkpoint(name: string, extraBytes = 0): ModelSource {
  const bytes = new Uint8Array(28 + 4 * floats() + extraBytes);
  HEADER.forEach((v, i) => new DataView(bytes.buffer).setInt32(i * 4, v, true));
  const path = join(dir, name);
  writeFileSync(path, bytes);
  return { source: name, path, type: 'file' };
}

describe('format-llama2c: which sources it claims', () => {
  it('claims a .bin exactly as long as its header implies, below a format with a magic', async () => {
    const match = await llama2cFormat.detect(checkpoint('model.bin'));
    assert.equal(match?.confidence, 0.9);
    assert.equal(match?.kind, 'llm');
    assert.equal(match?.buildsGraph, true);
  });

  it('turns down a .bin of the wrong length or without a header, saying why; ignores other names', async () => {
    assert.match(
      (await llama2cFormat.detect(checkpoint('longer.bin', 4)))!.reason,
      /length does not match its llama2\.c header/,
    );
    const zeros = join(dir, 'zeros.bin');
    writeFileSync(zeros, new Uint8Array(64));
    assert.match(
      (await llama2cFormat.detect({ source: 'zeros.bin', path: zeros, type: 'file' }))!.reason,
      /without a llama2\.c header/,
    );
    assert.equal(await llama2cFormat.detect(checkpoint('model.ckpt')), undefined);
  });

  it('looks for the tokenizer beside the checkpoint, by vocabulary size first', () => {
    assert.deepEqual(tokenizerCandidates(join(dir, 'model.bin'), 512), [
      join(dir, 'tok512.bin'),
      join(dir, 'tokenizer.bin'),
    ]);
  });
});
