import assert from 'node:assert/strict';
import {
  blockSizeFor,
  DEFAULT_INT8_OPTIONS,
  dequantizeBlocks,
  describeInt8,
  Int8WeightTransform,
  quantizeBlocks,
} from '@nucleus/plugin-quant-int8';
import { SeededRandom } from '@nucleus/sdk';

/** A `K × N` matrix of values in [-1, 1), row-major as MatMul's B. */
function matrix(K: number, N: number, seed: number): Float32Array {
  const random = new SeededRandom(seed);
  return Float32Array.from({ length: K * N }, () => random.next() * 2 - 1);
}

describe('quant-int8: block quantization', () => {
  it('round-trips a float matrix within half a step of each block’s scale', () => {
    const [K, N] = [40, 3];
    const w = matrix(K, N, 7);
    const blocks = quantizeBlocks(w, K, N, 16);
    assert.equal(blocks.blocksPerColumn, 3);
    assert.equal(blocks.data.length, N * 3 * 16);
    assert.equal(blocks.scales.length, N * 3);
    const back = dequantizeBlocks(blocks, K, N);
    let worst = 0;
    for (let k = 0; k < K; k++) {
      for (let n = 0; n < N; n++) {
        const scale = blocks.scales[n * blocks.blocksPerColumn + Math.floor(k / 16)]!;
        const err = Math.abs(back[k * N + n]! - w[k * N + n]!);
        assert.ok(err <= scale / 2 + 1e-7, `w[${k},${n}] off by ${err}, scale ${scale}`);
        worst = Math.max(worst, err);
      }
    }
    assert.ok(Math.abs(blocks.maxError - worst) < 1e-7);
    assert.equal(blocks.lossless, false);
  });

  it('maps each block’s largest magnitude to ±127, stored as q + 128, and pads a short last block with 128', () => {
    // K = 3 in one block of 16: -2 sets the scale; 1.02 and -0.5 are 64.77 and -31.75 steps of it.
    const blocks = quantizeBlocks([-2, 1.02, -0.5], 3, 1, 16);
    assert.equal(blocks.scales[0], Math.fround(2 / 127));
    assert.deepEqual([...blocks.data.slice(0, 3)], [128 - 127, 128 + 65, 128 - 32]);
    assert.ok(blocks.data.slice(3).every((b) => b === 128));
  });

  it('rounds a value half a step from the grid away from zero, as llama.cpp does', () => {
    const scale = Math.fround(1 / 127);
    // -1 sets the scale; ±scale/2 and 1.5 × scale lie exactly halfway between two steps.
    const blocks = quantizeBlocks([-1, -scale / 2, scale / 2, 1.5 * scale], 4, 1, 16);
    assert.equal(blocks.scales[0], scale);
    assert.deepEqual([...blocks.data.slice(0, 4)], [128 - 127, 128 - 1, 128 + 1, 128 + 2]);
  });

  it('is exact on weights already on an 8-bit grid, as dequantized GGUF Q8_0 blocks are', () => {
    const scale = Math.fround(0.01);
    const q = [-127, -3, 0, 5, 127, 64, -64, 1];
    const w = Float32Array.from(q, (x) => Math.fround(x * scale));
    const blocks = quantizeBlocks(w, 8, 1, 16);
    assert.equal(blocks.lossless, true);
    assert.equal(blocks.maxError, 0);
    assert.deepEqual([...dequantizeBlocks(blocks, 8, 1)], [...w]);
  });

  it('an all-zero block keeps scale 0 and zero weights', () => {
    const blocks = quantizeBlocks(new Float32Array(32), 32, 1, 16);
    assert.deepEqual([...blocks.scales], [0, 0]);
    assert.ok(blocks.data.every((b) => b === 128));
    assert.ok(dequantizeBlocks(blocks, 32, 1).every((v) => v === 0));
    assert.equal(blocks.lossless, true);
  });

  it('reads a transposed [N, K] weight to the same blocks as its [K, N] form', () => {
    const [K, N] = [20, 4];
    const kn = matrix(K, N, 3);
    const nk = new Float32Array(K * N);
    for (let k = 0; k < K; k++) for (let n = 0; n < N; n++) nk[n * K + k] = kn[k * N + n]!;
    const a = quantizeBlocks(kn, K, N, 16, 'kn');
    const b = quantizeBlocks(nk, K, N, 16, 'nk');
    assert.deepEqual(b.data, a.data);
    assert.deepEqual(b.scales, a.scales);
  });

  it('refuses a weight whose length is not K × N', () => {
    assert.throws(() => quantizeBlocks([1, 2, 3], 2, 2, 16), /weight has 3 values, expected 2 × 2/);
  });

  it('picks the configured block size, or the smallest power of two from 16 that holds a narrower K', () => {
    assert.equal(blockSizeFor(4096, 32), 32);
    assert.equal(blockSizeFor(8, 32), 16);
    assert.equal(blockSizeFor(17, 64), 32);
    assert.equal(blockSizeFor(64, 64), 64);
    assert.equal(blockSizeFor(100, 16), 16);
  });
});

describe('quant-int8: report and transform', () => {
  it('describes a rewrite in one line, and says so when nothing was quantized', () => {
    const report = {
      nodes: 3,
      embeddings: 1,
      weights: 4,
      lossless: 1,
      floatBytes: 4096,
      int8Bytes: 1024,
      skipped: [{ name: 'w_half', reason: 'B is float16' }],
      maxError: 0.01,
    };
    assert.equal(
      describeInt8(report),
      '3 MatMul/Gemm nodes → MatMulNBits and 1 Gather → GatherBlockQuantized, 8-bit over 4 weights ' +
        '(1 exactly on an 8-bit grid), 4.0 KiB → 1.0 KiB (4.00× smaller); 1 left float32',
    );
    assert.equal(
      describeInt8({ ...report, nodes: 0, embeddings: 0 }),
      'no MatMul or embedding with a constant float32 weight; graph unchanged (1 skipped)',
    );
  });

  it('the transform is named int8, and its fingerprint changes with its options', () => {
    const a = new Int8WeightTransform();
    assert.equal(a.name, 'int8');
    assert.deepEqual(a.options, { ...DEFAULT_INT8_OPTIONS, bits: 8, symmetric: true, ropeTables: 'stored' });
    assert.equal(new Int8WeightTransform({ ...DEFAULT_INT8_OPTIONS }).fingerprint, a.fingerprint);
    assert.notEqual(new Int8WeightTransform({ accuracyLevel: 0, blockSize: 32 }).fingerprint, a.fingerprint);
    assert.notEqual(new Int8WeightTransform({ accuracyLevel: 4, blockSize: 64 }).fingerprint, a.fingerprint);
  });
});
