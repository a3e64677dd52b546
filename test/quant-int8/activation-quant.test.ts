import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { SeededRandom } from '@nucleus/sdk';
import { GraphBuilder, type OnnxModel } from '@nucleus/sdk/onnx';
import {
  entropyThreshold,
  parseQuantizeOptions,
  percentileThreshold,
  quantizeDynamic,
  quantizeFp16,
  quantizeStatic,
  readSamples,
  TensorStats,
  type StaticOptions,
} from '@nucleus/plugin-quant-int8';
import { builtinPair, clone, compare, ops, run } from './quant-fixtures.js';

const staticOptions = (calibration: string, more: Partial<StaticOptions> = {}): StaticOptions =>
  parseQuantizeOptions<StaticOptions>('static', { calibration, ...more });

describe('quant-int8: static int8 (QDQ) with calibration', () => {
  let dir: string;
  let mlp: OnnxModel;
  let resnet: OnnxModel;
  let calibration: string;
  let heldOut: Float32Array;
  before(async () => {
    ({ dir, mlp, resnet } = await builtinPair('quant-static'));
    const rng = new SeededRandom(5);
    const lines = Array.from({ length: 64 }, () => JSON.stringify({ input: Array.from(rng.normals(4, 1.5)) }));
    calibration = join(dir, 'calibration.jsonl');
    writeFileSync(calibration, `${lines.join('\n')}\n`);
    heldOut = new SeededRandom(99).normals(256 * 4, 1.5);
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  // Held-out probabilities of the 4 → 16 → 3 MLP (inputs quantized per tensor, so a step of ~0.04 on 4 features):
  // the tolerances the plugin README states, from 256 held-out rows.
  const tolerance = { minmax: [0.15, 0.99], percentile: [0.15, 0.99], entropy: [0.25, 0.97] } as const;
  for (const calibrator of ['minmax', 'percentile', 'entropy'] as const) {
    const [maxAllowed, minAgreement] = tolerance[calibrator];
    it(`${calibrator}: QDQ around both Gemms, per-channel int8 weights, held-out probabilities within ${maxAllowed}, labels ≥ ${minAgreement * 100} % equal`, async () => {
      const model = clone(mlp);
      const report = await quantizeStatic(model, staticOptions(calibration, { calibrator }));
      assert.equal(report.nodes, 2);
      assert.equal(report.skipped.length, 0);
      assert.deepEqual(
        ops(model).filter((o) => o === 'QuantizeLinear' || o === 'DequantizeLinear').length,
        6,
        'one Q/DQ pair per activation, one DQ per weight',
      );
      const w = model.graph.initializers.find((t) => t.name === 'fc1.weight.int8')!;
      assert.equal(w.dtype, 'int8');
      assert.deepEqual(model.graph.initializers.find((t) => t.name === 'fc1.weight.scale')!.dims, [16]);
      assert.ok(!model.graph.initializers.some((t) => t.name === 'fc1.weight'), 'the float weight is gone');
      const feeds = { input: new ort.Tensor('float32', heldOut, [256, 4]) };
      const [f, q] = await Promise.all([run(mlp, feeds, 'probabilities'), run(model, feeds, 'probabilities')]);
      const { maxDiff, agreement } = compare(f, q, 3);
      console.log(
        `      ${calibrator}: max |Δp| ${maxDiff.toFixed(4)}, top-1 agreement ${(agreement * 100).toFixed(1)} %`,
      );
      assert.ok(maxDiff > 0 && maxDiff < maxAllowed, `max difference ${maxDiff}`);
      assert.ok(agreement >= minAgreement, `agreement ${agreement}`);
    });
  }

  it('resnet-tiny: every Conv and the Gemm quantized; logits within 5 % of their range of float32', async function () {
    this.timeout(300_000);
    const rng = new SeededRandom(8);
    const images = (n: number): number[][][][] =>
      Array.from({ length: n }, () =>
        Array.from({ length: 3 }, () => Array.from({ length: 224 }, () => Array.from(rng.normals(224, 1)))),
      );
    const file = join(dir, 'images.jsonl');
    writeFileSync(
      file,
      images(8)
        .map((x) => JSON.stringify({ input: x }))
        .join('\n'),
    );
    const model = clone(resnet);
    const report = await quantizeStatic(model, staticOptions(file, { calibrator: 'percentile' }));
    assert.equal(report.nodes, 7);
    const test = images(4).flat(4) as number[];
    const feeds = { input: new ort.Tensor('float32', Float32Array.from(test), [4, 3, 224, 224]) };
    const [f, q] = await Promise.all([run(resnet, feeds, 'logits'), run(model, feeds, 'logits')]);
    const span = Math.max(...f) - Math.min(...f);
    const { maxDiff } = compare(f, q, 10);
    console.log(`      resnet-tiny: max |Δlogit| ${maxDiff.toFixed(4)} over a range of ${span.toFixed(3)}`);
    assert.ok(maxDiff < 0.05 * span, `max difference ${maxDiff} of ${span}`);
  });

  it('include and exclude lists pick nodes by op type or name; the rest stay float with the reason', async () => {
    const model = clone(resnet);
    const samples = join(dir, 'one-image.json');
    writeFileSync(
      samples,
      JSON.stringify({
        input: { dims: [1, 3, 224, 224], data: Array.from(new SeededRandom(3).normals(3 * 224 * 224, 1)) },
      }),
    );
    const report = await quantizeStatic(model, staticOptions(samples, { exclude: ['Conv'], include: [] }));
    assert.equal(report.nodes, 1);
    assert.equal(report.skipped.length, 6);
    assert.deepEqual(new Set(report.skipped.map((s) => s.reason)), new Set(['excluded (op type Conv)']));
    const named = clone(resnet);
    const only = await quantizeStatic(named, staticOptions(samples, { include: ['stem'] }));
    assert.equal(only.nodes, 1);
    assert.ok(only.skipped.every((s) => s.reason === 'not in the include list'));
  });

  it('a broken calibration file is a 400 naming the file and line', () => {
    const file = join(dir, 'broken.jsonl');
    writeFileSync(file, `${JSON.stringify({ input: [1, 2, 3, 4] })}\n{"input": [1, 2\n`);
    assert.throws(
      () => readSamples(file, mlp),
      (err: Error & { status?: number }) => {
        assert.equal(err.status, 400);
        assert.match(err.message, /broken\.jsonl:2: not JSON/);
        return true;
      },
    );
    writeFileSync(file, `${JSON.stringify({ features: [1, 2, 3, 4] })}\n`);
    assert.throws(() => readSamples(file, mlp), /sample 1: no value for input "input" \(inputs: input\)/);
    assert.throws(
      () => parseQuantizeOptions('static', { calibrator: 'kl' }),
      /quantize static: .*calibration.*; calibrator must be equal to one of the allowed values/,
    );
  });
});

describe('quant-int8: calibrators', () => {
  it('min-max keeps the extremes; percentile and entropy clip a rare outlier', () => {
    const rng = new SeededRandom(2);
    const values = rng.normals(20_000, 1);
    values[7] = 40;
    const stats = new TensorStats();
    stats.observeRange(values);
    stats.observeHistogram(values);
    assert.deepEqual(stats.range('minmax'), { min: stats.min, max: 40 });
    const p = stats.range('percentile', 99.9);
    const e = stats.range('entropy');
    assert.ok(p.max > 2.5 && p.max < 5, `percentile clip ${p.max}`);
    assert.ok(e.max > 2 && e.max < 20, `entropy clip ${e.max}`);
    assert.equal(percentileThreshold(stats.histogram!, 40, 100), 40);
    assert.ok(entropyThreshold(stats.histogram!, 40) <= 40);
  });
});

describe('quant-int8: dynamic int8 and fp16 weights', () => {
  let dir: string;
  let mlp: OnnxModel;
  let resnet: OnnxModel;
  before(async () => {
    ({ dir, mlp, resnet } = await builtinPair('quant-dynamic'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('dynamic: DynamicQuantizeLinear + MatMulInteger per Gemm, ConvInteger per Conv, outputs near float32', async () => {
    const model = clone(mlp);
    const report = quantizeDynamic(model, { perChannel: true, include: [], exclude: [] });
    assert.equal(report.nodes, 2);
    assert.equal(ops(model).filter((o) => o === 'MatMulInteger').length, 2);
    assert.equal(ops(model).filter((o) => o === 'DynamicQuantizeLinear').length, 2);
    const x = new SeededRandom(4).normals(256 * 4, 1.5);
    const feeds = { input: new ort.Tensor('float32', x, [256, 4]) };
    const mlpCompare = compare(await run(mlp, feeds, 'probabilities'), await run(model, feeds, 'probabilities'), 3);
    console.log(
      `      mlp: max |Δp| ${mlpCompare.maxDiff.toFixed(4)}, top-1 agreement ${(mlpCompare.agreement * 100).toFixed(1)} %`,
    );
    // Activation ranges come from the whole batch at run time: coarser than calibrated ones on this tiny MLP.
    assert.ok(mlpCompare.maxDiff > 0 && mlpCompare.maxDiff < 0.3, `max difference ${mlpCompare.maxDiff}`);
    assert.ok(mlpCompare.agreement >= 0.95, `agreement ${mlpCompare.agreement}`);
    const cnn = clone(resnet);
    const r = quantizeDynamic(cnn, { perChannel: true, include: [], exclude: [] });
    assert.equal(r.nodes, 7);
    assert.equal(ops(cnn).filter((o) => o === 'ConvInteger').length, 6);
    const images = new SeededRandom(6).normals(2 * 3 * 224 * 224, 1);
    const imageFeeds = { input: new ort.Tensor('float32', images, [2, 3, 224, 224]) };
    const f = await run(resnet, imageFeeds, 'logits');
    const { maxDiff } = compare(f, await run(cnn, imageFeeds, 'logits'), 10);
    const span = Math.max(...f) - Math.min(...f);
    console.log(`      resnet-tiny: max |Δlogit| ${maxDiff.toFixed(4)} over a range of ${span.toFixed(3)}`);
    assert.ok(maxDiff < 0.05 * span, `max difference ${maxDiff} of ${span}`);
  });

  it("ORT's CPU provider: MatMulInteger takes per-column zero points, ConvInteger int8 weights but no per-channel zero point", async () => {
    const mm = new GraphBuilder('mm');
    const a = mm.input('a', 'uint8', [2, 4]);
    const b = mm.initializer('b', new Int8Array([1, -2, 3, -4, 5, -6, 7, -8]), [4, 2], { dtype: 'int8' });
    const az = mm.initializer('az', new Uint8Array([3]), [], { dtype: 'uint8' });
    const bz = mm.initializer('bz', new Int8Array([0, 1]), [2], { dtype: 'int8' });
    mm.output(mm.node('MatMulInteger', [a, b, az, bz], {}, { outputs: ['y'] }), 'int32', [2, 2]);
    const y = await run(
      mm.toModel(),
      { a: new ort.Tensor('uint8', new Uint8Array([3, 4, 5, 6, 3, 3, 3, 3]), [2, 4]) },
      'y',
    );
    // Row 0: (0,1,2,3)·(1,3,5,7) = 34 and (0,1,2,3)·(−3,−5,−7,−9) = −46; row 1 is all zero-point.
    assert.deepEqual(Array.from(y), [34, -46, 0, 0]);

    const conv = (zeroPoints?: Int8Array): OnnxModel => {
      const g = new GraphBuilder('conv');
      const x = g.input('x', 'uint8', [1, 2, 3, 3]);
      const w = g.initializer('w', new Int8Array([1, 1, -1, 2]), [2, 2, 1, 1], { dtype: 'int8' });
      const inputs = [x, w];
      if (zeroPoints)
        inputs.push(
          g.initializer('xz', new Uint8Array([0]), [], { dtype: 'uint8' }),
          g.initializer('wz', zeroPoints, [2], { dtype: 'int8' }),
        );
      g.output(g.node('ConvInteger', inputs, {}, { outputs: ['y'] }), 'int32', [1, 2, 3, 3]);
      return g.toModel();
    };
    const x = { x: new ort.Tensor('uint8', new Uint8Array(18).fill(2), [1, 2, 3, 3]) };
    const plain = await run(conv(), x, 'y');
    assert.deepEqual(Array.from(plain.slice(0, 1)).concat(Array.from(plain.slice(9, 10))), [4, 2]);
    await assert.rejects(run(conv(new Int8Array([0, 1])), x, 'y'), /ConvInteger/);
  });

  it('fp16: weights of 64+ values stored float16 behind Casts, outputs within 1e-3, file smaller', async () => {
    const model = clone(resnet);
    const report = quantizeFp16(model, { include: [], exclude: [] });
    assert.ok(report.weights >= 7);
    assert.ok(model.graph.initializers.some((t) => t.dtype === 'float16'));
    assert.ok(model.encode().byteLength < resnet.encode().byteLength * 0.6);
    const x = new SeededRandom(6).normals(2 * 3 * 224 * 224, 1);
    const feeds = { input: new ort.Tensor('float32', x, [2, 3, 224, 224]) };
    const { maxDiff } = compare(await run(resnet, feeds, 'logits'), await run(model, feeds, 'logits'), 10);
    assert.ok(maxDiff < 1e-2, `max difference ${maxDiff}`);
  });
});
