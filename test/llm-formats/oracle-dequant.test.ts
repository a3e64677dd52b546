// GGUF tensor types against the oracle's dequantization references (gguf-py, cross-checked bit-identical with
// ggml's own C): every value must have the same float32 bits, through both reading paths.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { closeSync, openSync, readdirSync, readFileSync, readSync } from 'node:fs';
import { join } from 'node:path';
import {
  BLOCK_QUANTIZED_GGML_TYPES,
  dequantizeMatrix,
  ggmlTypeName,
  readGguf,
  readTensorBytes,
  readTensorF32,
  SUPPORTED_GGML_TYPE_NAMES,
  toBlockQuantized,
  type GgufFile,
} from '../helpers/llm.js';
import { ORACLE_DIR, requireOracle } from './llm-module.js';

interface DequantEntry {
  gguf_file: string;
  tensor: string;
  type: string;
  ne: [number, number];
  data_offset: number;
  raw_bytes: number;
  raw_sha256: string;
  count: number;
  file: string;
}

interface Manifest {
  gguf: { file: string; tensor_types: Record<string, string> }[];
}

const bits = (values: Float32Array): Uint32Array => new Uint32Array(values.buffer, values.byteOffset, values.length);

/** The index of the first value whose float32 bits differ, or −1. */
function firstDifference(actual: Float32Array, expected: Float32Array): number {
  const a = bits(actual);
  const e = bits(expected);
  if (a.length !== e.length) return Math.min(a.length, e.length);
  return a.findIndex((v, i) => v !== e[i]);
}

function readAt(path: string, offset: number, length: number): Buffer {
  const buf = Buffer.alloc(length);
  const fd = openSync(path, 'r');
  try {
    assert.equal(readSync(fd, buf, 0, length, offset), length);
  } finally {
    closeSync(fd);
  }
  return buf;
}

describe('GGUF dequantization against the llama.cpp oracle, bit for bit', () => {
  const files = new Map<string, GgufFile>();
  const gguf = (name: string): GgufFile => {
    let f = files.get(name);
    if (!f) files.set(name, (f = readGguf(join(ORACLE_DIR, name))));
    return f;
  };

  before(function () {
    requireOracle(this);
  });

  it('every dequant/ reference: toBlockQuantized + dequantizeMatrix and readTensorF32 give its exact float32 bits', () => {
    const index = JSON.parse(readFileSync(join(ORACLE_DIR, 'dequant', 'index.json'), 'utf8')) as {
      entries: DequantEntry[];
    };
    const types = new Set<string>();
    for (const e of index.entries) {
      const what = `${e.gguf_file} ${e.tensor} (${e.type})`;
      const file = gguf(e.gguf_file);
      const tensor = file.tensors.find((t) => t.name === e.tensor);
      assert.ok(tensor, `${what}: no such tensor`);
      assert.equal(ggmlTypeName(tensor.type), e.type, what);
      assert.equal(tensor.offset, e.data_offset, `${what}: data offset`);
      const raw = readAt(file.path, e.data_offset, e.raw_bytes);
      assert.equal(createHash('sha256').update(raw).digest('hex'), e.raw_sha256, `${what}: raw bytes`);
      const reference = new Float32Array(readFileSync(join(ORACLE_DIR, 'dequant', e.file)).buffer.slice(0));
      assert.equal(reference.length, e.count);
      const [cols] = e.ne;
      const rows = e.count / cols;

      // The reading path: the tensor's first `rows` rows as float32.
      const head = { ...tensor, dims: [cols, rows], elements: e.count };
      assert.deepEqual(readTensorBytes(file, head), raw, `${what}: readTensorBytes`);
      const read = readTensorF32(file, head);
      assert.equal(firstDifference(read, reference), -1, `${what}: readTensorF32 differs`);

      // The quantized path: kept block-quantized, then expanded by the SDK's formula.
      if (BLOCK_QUANTIZED_GGML_TYPES.includes(tensor.type)) {
        const m = toBlockQuantized(e.tensor, tensor.type, raw, rows, cols);
        assert.equal(m.sourceType, e.type);
        const at = firstDifference(dequantizeMatrix(m), reference);
        assert.equal(at, -1, `${what}: dequantizeMatrix(toBlockQuantized) differs at ${at}`);
      }
      types.add(e.type);
    }
    assert.deepEqual([...types].sort(), [
      'F16',
      'F32',
      'Q2_K',
      'Q3_K',
      'Q4_0',
      'Q4_1',
      'Q4_K',
      'Q5_0',
      'Q5_1',
      'Q5_K',
      'Q6_K',
      'Q8_0',
    ]);
  });

  it('reads every tensor of every quant-zoo file, both ways alike, and every type the manifest lists is supported', () => {
    const manifest = JSON.parse(readFileSync(join(ORACLE_DIR, 'MANIFEST.json'), 'utf8')) as Manifest;
    const listed = new Set(manifest.gguf.flatMap((g) => Object.values(g.tensor_types)));
    for (const type of listed) assert.ok(SUPPORTED_GGML_TYPE_NAMES.includes(type), `${type} is not supported`);

    const zoo = readdirSync(ORACLE_DIR).filter((f) => /^quant-zoo-.*\.gguf$/.test(f));
    assert.equal(zoo.length, 15);
    for (const name of zoo) {
      const file = gguf(name);
      const types = manifest.gguf.find((g) => g.file === name)!.tensor_types;
      assert.equal(file.tensors.length, Object.keys(types).length, name);
      for (const tensor of file.tensors) {
        const what = `${name} ${tensor.name}`;
        assert.equal(ggmlTypeName(tensor.type), types[tensor.name], what);
        const values = readTensorF32(file, tensor);
        assert.equal(values.length, tensor.elements, what);
        assert.ok(
          values.every((v) => Number.isFinite(v)),
          `${what}: non-finite value`,
        );
        if (!BLOCK_QUANTIZED_GGML_TYPES.includes(tensor.type)) continue;
        const cols = tensor.dims[0]!;
        const m = toBlockQuantized(
          tensor.name,
          tensor.type,
          readTensorBytes(file, tensor),
          tensor.elements / cols,
          cols,
        );
        const at = firstDifference(dequantizeMatrix(m), values);
        assert.equal(at, -1, `${what}: the two paths differ at ${at}`);
      }
    }
  });
});
