import assert from 'node:assert/strict';
import { closeSync, openSync, readFileSync, readSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { SeededRandom } from '@nucleus/sdk';
import { ensureBuiltinModels } from '@nucleus/plugin-builtin-models';
import { halfToFloat } from '../helpers/llm.js';
import {
  buildLlamaGraph,
  builtDecoderConfig,
  dequantizeMatrix,
  inspectGguf,
  readGguf,
  readGgufWeights,
  type LlamaWeights,
  type WeightMatrix,
} from '../helpers/llm.js';
import { GraphBuilder, loadModel, saveModel, type OnnxModel } from '@nucleus/sdk/onnx';
import { blockSizeFor, dequantizeBlocks, quantizeBlocks, quantizeInt8 } from '@nucleus/plugin-quant-int8';
import { tempDir } from '../helpers/paths.js';
import { DecoderRunner } from '../llm-formats/decoder-runner.js';
import { parseIds, requireStories, STORIES_DIR } from '../llm-formats/llm-module.js';

ort.env.logLevel = 'fatal';
const session = (model: OnnxModel | Uint8Array): Promise<ort.InferenceSession> =>
  ort.InferenceSession.create(model instanceof Uint8Array ? model : model.encode(), { intraOpNumThreads: 1 });
const maxAbs = (a: ArrayLike<number>): number => {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]!));
  return m;
};
const maxDiff = (a: ArrayLike<number>, b: ArrayLike<number>): number => {
  assert.equal(a.length, b.length);
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i]! - b[i]!));
  return d;
};
const opTypes = (model: OnnxModel): string[] => model.graph.nodes.map((n) => n.opType);

describe('quant-int8: 8-bit blocks', () => {
  it('round to the nearest step of amax/127 per block of 32 along K, padding the last block with zeros', () => {
    const rng = new SeededRandom(3);
    const [K, N] = [80, 5]; // 3 blocks, the last one half empty
    const w = rng.normals(K * N, 0.2);
    const q = quantizeBlocks(w, K, N, 32);
    assert.equal(q.blocksPerColumn, 3);
    assert.equal(q.data.length, N * 3 * 32);
    const back = dequantizeBlocks(q, K, N);
    for (let n = 0; n < N; n++) {
      for (let b = 0; b < 3; b++) {
        let amax = 0;
        for (let k = b * 32; k < Math.min(K, b * 32 + 32); k++) amax = Math.max(amax, Math.abs(w[k * N + n]!));
        const scale = q.scales[n * 3 + b]!;
        assert.equal(scale, Math.fround(amax / 127));
        for (let k = b * 32; k < Math.min(K, b * 32 + 32); k++)
          assert.ok(Math.abs(back[k * N + n]! - w[k * N + n]!) <= scale / 2 + 1e-7);
      }
      for (let i = K - 64; i < 32; i++) assert.equal(q.data[(n * 3 + 2) * 32 + i], 128, 'padding past K is zero');
    }
    assert.equal(q.lossless, false);
    assert.ok(q.maxError > 0 && q.maxError <= maxAbs(w) / 254 + 1e-7);
  });

  it('give back weights already on an 8-bit grid (GGUF Q8_0: float16 scale × int8) exactly, bytes and scales', () => {
    const rng = new SeededRandom(4);
    const [K, N] = [64, 3];
    const ints = Array.from({ length: K * N }, () => Math.round((rng.next() * 2 - 1) * 127) || 0);
    // One ±127 per block, as Q8_0's rule makes the largest magnitude.
    for (let n = 0; n < N; n++) for (let b = 0; b < 2; b++) ints[b * 32 * N + n] = b ? -127 : 127;
    const scaleOf = (n: number, b: number): number => halfToFloat(0x2000 + 97 * n + 13 * b); // float16 values
    const w = new Float32Array(K * N);
    for (let k = 0; k < K; k++)
      for (let n = 0; n < N; n++) w[k * N + n] = ints[k * N + n]! * scaleOf(n, Math.floor(k / 32));
    const q = quantizeBlocks(w, K, N, 32);
    assert.equal(q.lossless, true);
    for (let n = 0; n < N; n++) {
      for (let k = 0; k < K; k++) assert.equal(q.data[n * K + k]! - 128, ints[k * N + n]);
      for (let b = 0; b < 2; b++) assert.equal(q.scales[n * 2 + b], scaleOf(n, b));
    }
  });

  it('read a transposed [N, K] weight (Gemm transB) as the same blocks', () => {
    const rng = new SeededRandom(5);
    const [K, N] = [40, 7];
    const w = rng.normals(K * N, 1);
    const t = new Float32Array(K * N);
    for (let k = 0; k < K; k++) for (let n = 0; n < N; n++) t[n * K + k] = w[k * N + n]!;
    const a = quantizeBlocks(w, K, N, 32, 'kn');
    const b = quantizeBlocks(t, K, N, 32, 'nk');
    assert.deepEqual(a.data, b.data);
    assert.deepEqual(a.scales, b.scales);
  });

  it('turn embedding lookups into GatherBlockQuantized over the rows, and say why a lookup stays float32', async () => {
    const rng = new SeededRandom(6);
    const g = new GraphBuilder('lookups', { opset: 17 });
    const ids = g.input('ids', 'int64', ['n']);
    const rows = rng.normals(10 * 64, 0.5);
    g.output(g.ops.gather(g.initializer('table', rows, [10, 64]), ids, 0), 'float32', ['n', 64], { name: 'picked' });
    g.output(g.ops.gather(g.initializer('narrow', rng.normals(10 * 40, 1), [10, 40]), ids, 0), 'float32', ['n', 40], {
      name: 'narrow_rows',
    });
    g.output(g.ops.gather(g.initializer('columns', rng.normals(4 * 10, 1), [4, 10]), ids, 1), 'float32', [4, 'n'], {
      name: 'cols',
    });
    const model = g.toModel({ producer: 'test' });
    const report = quantizeInt8(model, { accuracyLevel: 0, blockSize: 32 });
    assert.equal(report.embeddings, 1);
    assert.deepEqual(
      report.skipped.map((s) => `${s.name}: ${s.reason}`),
      ['narrow: rows of 40 do not split into blocks of 32', 'columns: Gather along an axis other than the rows'],
    );
    assert.deepEqual(opTypes(model), ['GatherBlockQuantized', 'Gather', 'Gather']);
    assert.equal(model.initializer('table'), undefined, 'the float table is gone');
    const picked = [7, 0, 7, 3];
    const out = await (await session(model)).run({
      ids: new ort.Tensor('int64', BigInt64Array.from(picked, BigInt), [4]),
    });
    const expected = dequantizeBlocks(quantizeBlocks(rows, 64, 10, 32, 'nk'), 64, 10); // [64, 10]: column r is row r
    const got = out.picked!.data as Float32Array;
    picked.forEach((r, i) => {
      for (let h = 0; h < 64; h++)
        assert.ok(Math.abs(got[i * 64 + h]! - expected[h * 10 + r]!) < 1e-6, `row ${r} value ${h}`);
    });
  });

  it('use a smaller power-of-two block for narrow inputs', () => {
    assert.equal(blockSizeFor(4, 32), 16);
    assert.equal(blockSizeFor(20, 32), 32);
    assert.equal(blockSizeFor(172, 32), 32);
    assert.equal(blockSizeFor(300, 64), 64);
  });
});

describe('quant-int8 on the built-in tensor models', () => {
  let cacheDir: string;
  let mlpPath: string;
  let bertPath: string;
  before(async () => {
    cacheDir = tempDir('quant-builtin');
    const models = await ensureBuiltinModels(cacheDir, { names: ['mlp-classifier', 'bert-tiny'] });
    mlpPath = models.find((m) => m.name === 'mlp-classifier')!.modelPath;
    bertPath = models.find((m) => m.name === 'bert-tiny')!.modelPath;
  });
  after(async () => {
    if (cacheDir) await rm(cacheDir, { recursive: true, force: true });
  });

  it('MLP: both Gemms become MatMulNBits; with float compute it equals a plain computation on the 8-bit weights', async () => {
    const float = await loadModel(mlpPath);
    const w1 = float.initializer('fc1.weight')!.data as Float32Array;
    const b1 = float.initializer('fc1.bias')!.data as Float32Array;
    const w2 = float.initializer('fc2.weight')!.data as Float32Array;
    const b2 = float.initializer('fc2.bias')!.data as Float32Array;
    const int8 = await loadModel(mlpPath);
    const report = quantizeInt8(int8, { accuracyLevel: 0, blockSize: 32 });
    assert.equal(report.nodes, 2);
    assert.equal(opTypes(int8).filter((t) => t === 'MatMulNBits').length, 2);
    assert.ok(!opTypes(int8).includes('Gemm'));
    assert.equal(int8.initializer('fc1.weight'), undefined, 'the float weight is gone');

    // Plain reference on the dequantized weights: relu(x·W1 + b1)·W2 + b2 → softmax.
    const dq1 = dequantizeBlocks(quantizeBlocks(w1, 4, 16, blockSizeFor(4, 32)), 4, 16);
    const dq2 = dequantizeBlocks(quantizeBlocks(w2, 16, 3, blockSizeFor(16, 32)), 16, 3);
    const rng = new SeededRandom(9);
    const batch = 64;
    const x = rng.normals(batch * 4, 1.5);
    const expected = new Float32Array(batch * 3);
    for (let r = 0; r < batch; r++) {
      const h = Array.from({ length: 16 }, (_, j) =>
        Math.max(0, b1[j]! + [0, 1, 2, 3].reduce((s, k) => s + x[r * 4 + k]! * dq1[k * 16 + j]!, 0)),
      );
      const logits = Array.from({ length: 3 }, (_, c) => b2[c]! + h.reduce((s, v, j) => s + v * dq2[j * 3 + c]!, 0));
      const m = Math.max(...logits);
      const e = logits.map((l) => Math.exp(l - m));
      const sum = e.reduce((a, b) => a + b, 0);
      e.forEach((v, c) => (expected[r * 3 + c] = v / sum));
    }
    const feeds = { input: new ort.Tensor('float32', x, [batch, 4]) };
    const got = (await (await session(int8)).run(feeds)).probabilities!.data as Float32Array;
    assert.ok(
      maxDiff(got, expected) < 1e-6,
      `int8 graph vs plain computation on its weights: ${maxDiff(got, expected)}`,
    );

    // Against float32: the fast kernel (int8 activations) stays within 0.02 of the probabilities.
    const fast = await loadModel(mlpPath);
    quantizeInt8(fast, { accuracyLevel: 4, blockSize: 32 });
    const ref = (await (await session(float)).run(feeds)).probabilities!.data as Float32Array;
    const fastOut = (await (await session(fast)).run(feeds)).probabilities!.data as Float32Array;
    assert.ok(maxDiff(got, ref) < 0.01, `int8 (float compute) vs float32: ${maxDiff(got, ref)}`);
    assert.ok(maxDiff(fastOut, ref) < 0.02, `int8 (int8 compute) vs float32: ${maxDiff(fastOut, ref)}`);
  });

  it('BERT-tiny: every projection and embedding is 8-bit, weights 3.4× smaller, hidden states within 3% of float32', async () => {
    const float = await loadModel(bertPath);
    const int8 = await loadModel(bertPath);
    const report = quantizeInt8(int8);
    const matmuls = opTypes(float).filter((t) => t === 'MatMul').length;
    assert.equal(report.nodes, 12, '2 layers × (q, k, v, out, ffn in, ffn out)');
    assert.equal(
      opTypes(int8).filter((t) => t === 'MatMul').length,
      matmuls - 12,
      'the attention products of activations stay MatMul',
    );
    assert.equal(
      report.embeddings,
      opTypes(float).filter((t) => t === 'Gather').length,
      'every Gather reads an embedding table',
    );
    assert.ok(!opTypes(int8).includes('Gather'));
    assert.ok(report.floatBytes / report.int8Bytes > 3.4, `ratio ${report.floatBytes / report.int8Bytes}`);
    assert.deepEqual(report.skipped, []);
    // The file shrinks by what the weights saved, less new names and nodes.
    assert.ok(float.encode().byteLength - int8.encode().byteLength > 0.9 * (report.floatBytes - report.int8Bytes));
    const seq = 24;
    const rng = new SeededRandom(11);
    const ids = BigInt64Array.from({ length: 2 * seq }, () => BigInt(Math.floor(rng.next() * 1024)));
    const mask = BigInt64Array.from({ length: 2 * seq }, (_, i) => (i >= seq && i % seq >= 20 ? 0n : 1n));
    const feeds = {
      input_ids: new ort.Tensor('int64', ids, [2, seq]),
      attention_mask: new ort.Tensor('int64', mask, [2, seq]),
    };
    const ref = (await (await session(float)).run(feeds)).last_hidden_state!.data as Float32Array;
    const got = (await (await session(int8)).run(feeds)).last_hidden_state!.data as Float32Array;
    const rel = maxDiff(got, ref) / maxAbs(ref);
    assert.ok(rel < 0.03 && rel > 0, `relative max difference ${rel}`);
  });
});

describe('quant-int8 on stories260K-q8_0.gguf', () => {
  const ORDER: [gguf: string, graph: string][] = [
    ['attn_q', 'self_attn.q_proj'],
    ['attn_k', 'self_attn.k_proj'],
    ['attn_v', 'self_attn.v_proj'],
    ['attn_output', 'self_attn.o_proj'],
    ['ffn_gate', 'mlp.gate_proj'],
    ['ffn_up', 'mlp.up_proj'],
  ];
  let cacheDir: string;
  let onnxPath: string;
  let config: ReturnType<typeof builtDecoderConfig>;
  before(async function () {
    requireStories(this);
    cacheDir = tempDir('quant-stories');
    // The GGUF loader keeps Q8_0 blocks quantized itself; the transform's subject is the float graph of the same
    // weights, dequantized, as any float export of this model would be.
    const gguf = inspectGguf(join(STORIES_DIR, 'stories260K-q8_0.gguf'));
    const weights = densify(readGgufWeights(gguf));
    onnxPath = join(cacheDir, 'stories260K-q8_0-float.onnx');
    await saveModel(onnxPath, buildLlamaGraph(weights, gguf.arch, { ropeLayout: gguf.ropeLayout, style: 'generic' }));
    config = builtDecoderConfig(gguf.arch, 'generic', { eosTokenIds: gguf.eosTokenIds });
  });
  after(async () => {
    if (cacheDir) await rm(cacheDir, { recursive: true, force: true });
  });

  it("keeps the file's own Q8_0 blocks: every int8 and every scale equal the GGUF bytes", async () => {
    const model = await loadModel(onnxPath);
    const report = quantizeInt8(model);
    // 5 layers × 7 projections and the token embeddings, which the tied classifier reads too; ffn_down is stored F32
    // in the file (rows of 172).
    assert.equal(report.weights, 36);
    assert.equal(report.embeddings, 1);
    assert.equal(report.tied, 1);
    assert.equal(report.lossless, 31, 'all but the five F32 ffn_down weights come back exactly');
    const file = readGguf(join(STORIES_DIR, 'stories260K-q8_0.gguf'));
    const fd = openSync(file.path, 'r');
    try {
      const check = (ggufName: string, initializer: string): void => {
        const t = file.tensors.find((x) => x.name === ggufName)!;
        assert.equal(t.type, 8, `${ggufName} is Q8_0`);
        const [rowLength, rows] = t.dims as [number, number];
        const raw = Buffer.alloc((t.elements / 32) * 34);
        readSync(fd, raw, 0, raw.length, t.offset);
        const data = model.initializer(`${initializer}.q8`)!.data as Uint8Array;
        const scales = model.initializer(`${initializer}.scales`)!.data as Float32Array;
        assert.equal(data.length, rows * rowLength, initializer);
        for (let block = 0; block < t.elements / 32; block++) {
          assert.equal(scales[block], halfToFloat(raw.readUInt16LE(block * 34)), `${initializer} scale ${block}`);
          for (let j = 0; j < 32; j++) assert.equal(data[block * 32 + j]! - 128, raw.readInt8(block * 34 + 2 + j));
        }
      };
      for (let l = 0; l < 5; l++)
        for (const [g, o] of ORDER) check(`blk.${l}.${g}.weight`, `model.layers.${l}.${o}.weight`);
      // The embedding table, read by GatherBlockQuantized and by the classifier's MatMulNBits: the file's rows.
      check('token_embd.weight', 'model.embed_tokens.weight');
    } finally {
      closeSync(fd);
    }
    const before = (await loadModel(onnxPath)).encode().byteLength;
    const after = model.encode().byteLength;
    assert.ok(before / after > 2.4, `model ${before} → ${after} bytes`);
  });

  it('200 greedy ids from BOS against reference-q8_0-greedy-200: all with float compute, at least the first 114 with int8 compute', async () => {
    const expected = parseIds(readFileSync(join(STORIES_DIR, 'reference-q8_0-greedy-200.ids.txt'), 'utf8')).next;
    const agreement = async (accuracyLevel: 0 | 4): Promise<{ prefix: number; same: number }> => {
      const model = await loadModel(onnxPath);
      quantizeInt8(model, { accuracyLevel, blockSize: 32 });
      const runner = await DecoderRunner.open(model.encode(), config);
      try {
        const ids = await runner.greedy([1], 200, [1]);
        let prefix = 0;
        while (prefix < ids.length && ids[prefix] === expected[prefix]) prefix++;
        return { prefix, same: ids.filter((id, i) => id === expected[i]).length };
      } finally {
        await runner.close();
      }
    };
    const exact = await agreement(0);
    assert.deepEqual(exact, { prefix: 200, same: 200 });
    // Quantizing activations too moves the logits a little; the F32 and Q8_0 references themselves part after id 114.
    const fast = await agreement(4);
    console.log(
      `      int8 compute (accuracy_level 4), generic graph: first ${fast.prefix} of 200 ids agree, ${fast.same} positions equal`,
    );
    assert.ok(fast.prefix >= 114, `only the first ${fast.prefix} ids agree`);
  });
});

// Every matrix as float32: what the graph of a float export holds.
function densify(w: LlamaWeights): LlamaWeights {
  const dense = (m: WeightMatrix): Float32Array => (m instanceof Float32Array ? m : dequantizeMatrix(m));
  return {
    ...w,
    tokenEmbedding: dense(w.tokenEmbedding),
    ...(w.lmHead && { lmHead: dense(w.lmHead) }),
    layers: w.layers.map((l) => ({
      ...l,
      q: dense(l.q),
      k: dense(l.k),
      v: dense(l.v),
      o: dense(l.o),
      gate: dense(l.gate),
      up: dense(l.up),
      down: dense(l.down),
    })),
  };
}
