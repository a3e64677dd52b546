import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { buildLlamaGraph, builtDecoderConfig, inspectGguf, readGgufWeights } from '../helpers/llm.js';
import { SeededRandom } from '@nucleus/sdk';
import { OnnxModel } from '@nucleus/sdk/onnx';
import { computeRopeTables, quantizeWeights, WeightOnlyTransform } from '@nucleus/plugin-quant-int8';
import { DecoderRunner } from '../llm-formats/decoder-runner.js';
import { parseIds, requireStories, STORIES_DIR } from '../llm-formats/llm-module.js';

ort.env.logLevel = 'fatal';

describe('quant-int4 on stories260K: what the file holds besides the weights', () => {
  let float: Uint8Array;
  let config: ReturnType<typeof builtDecoderConfig>;
  before(function () {
    requireStories(this);
    const gguf = inspectGguf(join(STORIES_DIR, 'stories260K.gguf'));
    float = buildLlamaGraph(readGgufWeights(gguf), gguf.arch, {
      ropeLayout: gguf.ropeLayout,
      style: 'generic',
    }).encode();
    config = builtDecoderConfig(gguf.arch, 'generic', { eosTokenIds: gguf.eosTokenIds });
  });

  async function greedy(bytes: Uint8Array, prompt: number[], n: number): Promise<number[]> {
    const runner = await DecoderRunner.open(bytes, config);
    try {
      return await runner.greedy(prompt, n, []);
    } finally {
      await runner.close();
    }
  }

  it('RoPE tables computed in the graph: 15 KiB fewer, the float model still gives the reference 200 greedy ids', async () => {
    const model = OnnxModel.decode(float);
    const report = computeRopeTables(model);
    assert.equal(report.pairs, 1);
    assert.equal(report.removedBytes, 2 * 512 * 4 * 4);
    assert.ok(report.maxError < 1e-6, `tables recomputed within ${report.maxError}`);
    assert.equal(model.initializer('rope.cos'), undefined);
    assert.deepEqual(
      model.graph.nodes.slice(0, 5).map((n) => n.opType),
      ['Range', 'Unsqueeze', 'Mul', 'Cos', 'Sin'],
    );
    const bytes = model.encode();
    assert.ok(float.byteLength - bytes.byteLength > 15_000, `${float.byteLength} → ${bytes.byteLength}`);
    const expected = parseIds(readFileSync(join(STORIES_DIR, 'reference-greedy-200.ids.txt'), 'utf8'));
    assert.deepEqual(await greedy(bytes, expected.prompt, expected.next.length), expected.next);
  });

  it('a table that is not plain RoPE stays stored', () => {
    const model = OnnxModel.decode(float);
    const cos = model.initializer('rope.cos')!.data as Float32Array;
    cos[4 * 100 + 1]! += 1e-3;
    assert.equal(computeRopeTables(model).pairs, 0);
    assert.ok(model.initializer('rope.cos'));
  });

  it('RoPE tables wide enough for blocks are never block-quantized: computed, or kept float32 with the reason', () => {
    // headDim 64: tables of [positions, 32], which split into blocks like an embedding would.
    const arch = {
      vocabSize: 64,
      hiddenSize: 64,
      intermediateSize: 128,
      numLayers: 1,
      numHeads: 1,
      numKvHeads: 1,
      headDim: 64,
      rmsNormEps: 1e-5,
      ropeTheta: 10000,
      maxPositions: 32,
    };
    const rng = new SeededRandom(3);
    const m = (rows: number, cols: number): Float32Array => rng.normals(rows * cols, 0.1);
    const weights = {
      tokenEmbedding: m(64, 64),
      finalNorm: new Float32Array(64).fill(1),
      layers: [
        {
          attnNorm: new Float32Array(64).fill(1),
          q: m(64, 64),
          k: m(64, 64),
          v: m(64, 64),
          o: m(64, 64),
          ffnNorm: new Float32Array(64).fill(1),
          gate: m(128, 64),
          up: m(128, 64),
          down: m(64, 128),
        },
      ],
    };
    const graph = (): OnnxModel => buildLlamaGraph(weights, arch, { ropeLayout: 'interleaved', style: 'generic' });
    const stored = graph();
    const kept = quantizeWeights(stored, { accuracyLevel: 4, blockSize: 32, bits: 4, ropeTables: 'stored' });
    assert.equal(kept.embeddings, 1, 'only the token embedding');
    assert.deepEqual(
      kept.skipped.map((s) => s.reason),
      ['a RoPE table (cos/sin of positions): kept float32', 'a RoPE table (cos/sin of positions): kept float32'],
    );
    assert.equal(stored.initializer('rope.cos')?.dtype, 'float32');
    const computed = graph();
    const report = quantizeWeights(computed, { accuracyLevel: 4, blockSize: 32, bits: 4, ropeTables: 'computed' });
    assert.equal(report.rope?.pairs, 1);
    assert.equal(report.embeddings, 1);
    assert.equal(computed.initializer('rope.cos'), undefined);
  });

  it('int4 shares the tied classifier with the embedding and computes RoPE: the whole file ≥ 5.8× (block 32), ≥ 6× (block 64) smaller', async () => {
    const ratios: Record<number, number> = {};
    for (const blockSize of [32, 64]) {
      const model = OnnxModel.decode(float);
      const { model: q, summary } = new WeightOnlyTransform({ accuracyLevel: 4, blockSize }, 'int4').transform(model, {
        model: 'stories',
        kind: 'llm',
        path: 'stories260K.gguf',
      });
      assert.match(summary, /the tied classifier reads the embedding's blocks; RoPE tables computed in the graph/);
      assert.equal(q.initializer('lm_head.weight.q4'), undefined, 'the classifier has no blocks of its own');
      assert.equal(q.initializer('model.embed_tokens.weight.zero_points'), undefined, 'symmetric: no zero points');
      const bytes = q.encode();
      ratios[blockSize] = float.byteLength / bytes.byteLength;
      // The 4-bit graph still generates: its first greedy ids are the float model's (4-bit weights part later).
      const expected = parseIds(readFileSync(join(STORIES_DIR, 'reference-greedy-200.ids.txt'), 'utf8'));
      const ids = await greedy(bytes, expected.prompt, 16);
      assert.equal(ids.length, 16);
      assert.deepEqual(ids.slice(0, 4), expected.next.slice(0, 4));
    }
    console.log(
      `      int4 whole file: block 32 ${ratios[32]!.toFixed(2)}×, block 64 ${ratios[64]!.toFixed(2)}× smaller`,
    );
    assert.ok(ratios[32]! >= 5.8, `block 32: ${ratios[32]}`);
    assert.ok(ratios[64]! >= 6, `block 64: ${ratios[64]}`);
  });

  it('the shared blocks are the ones the classifier gets on its own: same greedy ids with float compute', async () => {
    const shared = OnnxModel.decode(float);
    assert.equal(quantizeWeights(shared, { accuracyLevel: 0, blockSize: 32, bits: 4 }).tied, 1);
    // One value nudged by a float32 ulp: no longer the embedding's transpose, so quantized on its own.
    const apart = OnnxModel.decode(float);
    const lm = apart.initializer('lm_head.weight')!.data as Float32Array;
    lm[1] = lm[1]! + Math.abs(lm[1]!) * 2 ** -23;
    assert.equal(quantizeWeights(apart, { accuracyLevel: 0, blockSize: 32, bits: 4 }).tied ?? 0, 0);
    assert.ok(apart.initializer('lm_head.weight.q4'));
    assert.deepEqual(await greedy(shared.encode(), [1], 32), await greedy(apart.encode(), [1], 32));
  });
});
