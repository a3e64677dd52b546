import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  openCheckpoint,
  readSafetensors,
  readTensorF32,
  SafetensorsFormatError,
  writeSafetensors,
  type SafetensorsEntry,
} from '@nucleus/plugin-format-safetensors';

const dir = mkdtempSync(join(tmpdir(), 'format-safetensors-reader-'));
let files = 0;
after(() => rmSync(dir, { recursive: true, force: true }));

function f32(values: number[]): Uint8Array {
  return new Uint8Array(Float32Array.from(values).buffer);
}

function u16(values: number[]): Uint8Array {
  return new Uint8Array(Uint16Array.from(values).buffer);
}

function written(entries: SafetensorsEntry[]): string {
  const path = join(dir, `f${files++}.safetensors`);
  writeSafetensors(path, entries);
  return path;
}

/** A file whose header is `header` (as JSON, or raw bytes), with `data` after it. */
function raw(header: unknown, data = new Uint8Array(0), declared?: bigint): string {
  const json = Buffer.from(typeof header === 'string' ? header : JSON.stringify(header));
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(declared ?? BigInt(json.length));
  const path = join(dir, `f${files++}.safetensors`);
  writeFileSync(path, Buffer.concat([length, json, data]));
  return path;
}

/** The 400 the reader throws for `path`, whose message must match `why` and name the file. */
function refusal(path: string, why: RegExp): SafetensorsFormatError {
  try {
    readSafetensors(path);
  } catch (err) {
    assert.ok(err instanceof SafetensorsFormatError, `not a SafetensorsFormatError: ${String(err)}`);
    assert.match(err.message, why);
    assert.ok(err.message.startsWith(`${path}: `), err.message);
    assert.deepEqual([err.status, err.code], [400, 'unsupported_model']);
    return err;
  }
  assert.fail(`read ${path}`);
}

describe('safetensors reader', () => {
  it('reads F32, F16 and BF16 tensors by offset, exactly', () => {
    const path = written([
      { name: 'a', dtype: 'F32', shape: [2, 2], data: f32([1, -2.5, 3.25, 1e-8]) },
      // 1, -2, 65504 (largest half), 2^-24 (smallest subnormal half)
      { name: 'b', dtype: 'F16', shape: [4], data: u16([0x3c00, 0xc000, 0x7bff, 0x0001]) },
      // 1, -3, 1.5e38-ish (0x7f00 = 2^127 · 1.0)
      { name: 'c', dtype: 'BF16', shape: [3], data: u16([0x3f80, 0xc040, 0x7f00]) },
    ]);
    const file = readSafetensors(path);
    assert.deepEqual([...file.tensors.keys()], ['a', 'b', 'c']);
    assert.deepEqual([...readTensorF32(file, file.tensors.get('a')!)], [...Float32Array.from([1, -2.5, 3.25, 1e-8])]);
    assert.deepEqual([...readTensorF32(file, file.tensors.get('b')!)], [1, -2, 65504, 2 ** -24]);
    assert.deepEqual([...readTensorF32(file, file.tensors.get('c')!)], [1, -3, 2 ** 127]);
  });

  it('refuses a file shorter than its 8-byte header length', () => {
    const path = join(dir, 'short.safetensors');
    writeFileSync(path, Buffer.from([1, 2, 3]));
    refusal(path, /truncated header: the file has 3 bytes, fewer than the 8-byte header length/);
  });

  it('refuses a header length larger than the file', () => {
    refusal(raw({}, new Uint8Array(0), 1n << 40n), /header length 1099511627776 is larger than the file \(10 bytes\)/);
  });

  it('refuses a header that is not JSON, or not an object', () => {
    refusal(raw('{"a": '), /the header is not valid JSON/);
    refusal(raw('[1, 2]'), /the header is not a JSON object/);
  });

  it('refuses an unknown dtype, naming the tensor', () => {
    refusal(
      raw({ w: { dtype: 'Q4_K', shape: [4], data_offsets: [0, 4] } }, new Uint8Array(4)),
      /tensor w has unknown dtype "Q4_K" \(safetensors defines BOOL, U8/,
    );
  });

  it('refuses offsets beyond the file', () => {
    refusal(
      raw({ w: { dtype: 'F32', shape: [4], data_offsets: [0, 16] } }, new Uint8Array(8)),
      /tensor w ends at byte \d+, past the end of the file \(\d+ bytes\): the file is truncated/,
    );
  });

  it('refuses a shape whose bytes differ from its data_offsets', () => {
    refusal(
      raw({ w: { dtype: 'F16', shape: [3, 3], data_offsets: [0, 16] } }, new Uint8Array(16)),
      /tensor w: F16 \[3, 3\] needs 18 bytes, its data_offsets span 16/,
    );
    refusal(
      raw({ w: { dtype: 'F16', shape: [2, -1], data_offsets: [0, 4] } }, new Uint8Array(4)),
      /tensor w has shape \[2,-1\], not a list of non-negative integers/,
    );
  });

  it('refuses overlapping tensors', () => {
    refusal(
      raw(
        {
          a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
          b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] },
        },
        new Uint8Array(12),
      ),
      /tensors a and b overlap/,
    );
  });

  it('opens a sharded checkpoint through its index, and refuses an index that lies or leaves the folder', () => {
    const ckpt = join(dir, 'sharded');
    mkdirSync(ckpt);
    writeSafetensors(join(ckpt, 'model-00001-of-00002.safetensors'), [
      { name: 'x', dtype: 'F32', shape: [1], data: f32([7]) },
    ]);
    writeSafetensors(join(ckpt, 'model-00002-of-00002.safetensors'), [
      { name: 'y', dtype: 'F32', shape: [1], data: f32([8]) },
    ]);
    const index = (map: Record<string, string>): void =>
      writeFileSync(join(ckpt, 'model.safetensors.index.json'), JSON.stringify({ metadata: {}, weight_map: map }));
    index({ x: 'model-00001-of-00002.safetensors', y: 'model-00002-of-00002.safetensors' });
    const opened = openCheckpoint(ckpt);
    assert.equal(opened.files.length, 2);
    const y = opened.tensors.get('y')!;
    assert.deepEqual([...readTensorF32(y.file, y.tensor)], [8]);

    index({ x: 'model-00002-of-00002.safetensors' });
    assert.throws(
      () => openCheckpoint(ckpt),
      /weight_map puts x in model-00002-of-00002\.safetensors, which does not hold it/,
    );
    index({ x: '../f0.safetensors' });
    assert.throws(
      () => openCheckpoint(ckpt),
      /weight_map puts x in "\.\.\/f0\.safetensors", which is not a file name in the folder/,
    );
    index({ x: 'model-00003-of-00003.safetensors' });
    assert.throws(() => openCheckpoint(ckpt), /names shard model-00003-of-00003\.safetensors, which is missing/);
  });
});
