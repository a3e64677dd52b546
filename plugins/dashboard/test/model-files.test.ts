import { strict as assert } from 'node:assert';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ModelFiles } from '@nucleus/plugin-dashboard';

describe('dashboard: the size of a model version on disk', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'dashboard-model-files-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('counts a file with its ONNX external data, every file of a folder, and nothing for a URI or a missing path', async () => {
    const files = new ModelFiles();
    writeFileSync(join(dir, 'model.onnx'), Buffer.alloc(100));
    writeFileSync(join(dir, 'model.onnx.data'), Buffer.alloc(1000));
    writeFileSync(join(dir, 'other.bin'), Buffer.alloc(7));
    assert.equal(await files.bytes(join(dir, 'model.onnx')), 1100);
    assert.equal(await files.bytes(join(dir, 'other.bin')), 7);

    const folder = join(dir, 'hf');
    mkdirSync(join(folder, 'onnx'), { recursive: true });
    writeFileSync(join(folder, 'config.json'), Buffer.alloc(10));
    writeFileSync(join(folder, 'onnx', 'model.onnx'), Buffer.alloc(500));
    symlinkSync(join(dir, 'other.bin'), join(folder, 'linked.bin'));
    assert.equal(await files.bytes(folder), 517, 'nested files and linked files count');

    assert.equal(await files.bytes('https://example.com/model.onnx'), undefined);
    assert.equal(await files.bytes(join(dir, 'gone.onnx')), undefined);
    assert.equal(await files.bytes(undefined), undefined);
  });

  it('sees a file that changed', async () => {
    const files = new ModelFiles();
    const file = join(dir, 'changing.onnx');
    writeFileSync(file, Buffer.alloc(10));
    assert.equal(await files.bytes(file), 10);
    writeFileSync(file, Buffer.alloc(20));
    utimesSync(file, new Date(), new Date(Date.now() + 5000));
    assert.equal(await files.bytes(file), 20);
  });
});
