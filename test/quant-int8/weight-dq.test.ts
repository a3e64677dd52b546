import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { SeededRandom } from '@nucleus/sdk';
import { GraphBuilder, type OnnxModel } from '@nucleus/sdk/onnx';
import {
  parseQuantizeOptions,
  quantizeWeightsDq,
  WeightDqTransform,
  type WeightDqOptions,
} from '@nucleus/plugin-quant-int8';
import { builtinPair, clone, compare, ops, run } from './quant-fixtures.js';
import { runCli } from '../helpers/run-cli.js';

const options = (more: Record<string, unknown> = {}): WeightDqOptions =>
  parseQuantizeOptions<WeightDqOptions>('weightDq', more);

// The bench's tabular MLP shape (64 → 512 → 512 → 10, He-initialised): weights are 99 % of its file.
function tabularMlp(): OnnxModel {
  const rng = new SeededRandom(31);
  const g = new GraphBuilder('tabular_mlp');
  const widths = [64, 512, 512, 10];
  let x = g.input('input', 'float32', ['batch', 64]);
  for (let i = 1; i < widths.length; i++) {
    const [cin, cout] = [widths[i - 1]!, widths[i]!];
    const w = g.initializer(`fc${i}.weight`, rng.normals(cout * cin, Math.sqrt(2 / cin)), [cout, cin]);
    const b = g.initializer(`fc${i}.bias`, rng.normals(cout, 0.05), [cout]);
    const y = g.ops.gemm(x, w, b, { transB: true }, i === 3 ? { outputs: ['logits'] } : {});
    x = i === 3 ? y : g.ops.relu(y);
  }
  g.output(x, 'float32', ['batch', 10]);
  return g.toModel({ producer: 'nucleus-test' });
}

describe('quant-int8: int8-dq (int8 weights behind DequantizeLinear, float compute)', () => {
  let dir: string;
  let mlp: OnnxModel;
  let resnet: OnnxModel;
  before(async () => {
    ({ dir, mlp, resnet } = await builtinPair('quant-dq'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  // Tolerances the plugin README states for int8-dq: logits within 2 % of their range, ≥ 99 % top-1 agreement.
  it('a tabular MLP: ≥ 3.5× smaller file, held-out logits within 2 % of their range, ≥ 99 % top-1 agreement', async () => {
    const float = tabularMlp();
    const model = clone(float);
    const report = quantizeWeightsDq(model, options());
    assert.equal(report.nodes, 3);
    assert.equal(report.weights, 3);
    assert.deepEqual(
      ops(model).filter((o) => o === 'DequantizeLinear' || o === 'QuantizeLinear'),
      ['DequantizeLinear', 'DequantizeLinear', 'DequantizeLinear'],
      'weights only: no activation is quantized',
    );
    assert.deepEqual(ops(model).filter((o) => o === 'Gemm').length, 3, 'the ops themselves stay float Gemm');
    const w = model.graph.initializers.find((t) => t.name === 'fc2.weight.int8')!;
    assert.equal(w.dtype, 'int8');
    assert.deepEqual(model.graph.initializers.find((t) => t.name === 'fc2.weight.scale')!.dims, [512]);
    assert.ok(!model.graph.initializers.some((t) => t.name === 'fc2.weight'), 'the float weight is gone');
    const ratio = float.encode().byteLength / model.encode().byteLength;
    assert.ok(ratio >= 3.5, `${ratio.toFixed(3)}× smaller`);
    const feeds = { input: new ort.Tensor('float32', new SeededRandom(77).normals(512 * 64, 1), [512, 64]) };
    const [f, q] = await Promise.all([run(float, feeds, 'logits'), run(model, feeds, 'logits')]);
    const span = Math.max(...f) - Math.min(...f);
    const c = compare(f, q, 10);
    console.log(
      `      tabular MLP: ${ratio.toFixed(2)}× smaller, max |Δlogit| ${c.maxDiff.toFixed(4)} (mean ${c.mean.toFixed(5)}) over a range of ${span.toFixed(2)}, top-1 ${(c.agreement * 100).toFixed(1)} %`,
    );
    assert.ok(c.maxDiff > 0 && c.maxDiff < 0.02 * span, `max difference ${c.maxDiff} of ${span}`);
    assert.ok(c.agreement >= 0.99, `agreement ${c.agreement}`);
  });

  it('resnet-tiny: every Conv and the Gemm read int8 weights per output channel; logits within 2 % of their range', async function () {
    this.timeout(300_000);
    const model = clone(resnet);
    const report = quantizeWeightsDq(model, options());
    assert.equal(report.nodes, 7);
    assert.equal(report.skipped.length, 0);
    const convs = model.graph.nodes.filter((n) => n.opType === 'Conv');
    assert.ok(convs.every((n) => n.inputs[1]!.endsWith('.dequantized')));
    const dq = model.graph.nodes.find((n) => n.opType === 'DequantizeLinear')!;
    assert.equal(dq.inputs.length, 2, 'no zero-point tensor: symmetric int8');
    assert.equal(Number(dq.attributes.axis?.value), 0);
    const feeds = {
      input: new ort.Tensor('float32', new SeededRandom(8).normals(4 * 3 * 224 * 224, 1), [4, 3, 224, 224]),
    };
    const [f, q] = await Promise.all([run(resnet, feeds, 'logits'), run(model, feeds, 'logits')]);
    const span = Math.max(...f) - Math.min(...f);
    const c = compare(f, q, 10);
    console.log(`      resnet-tiny: max |Δlogit| ${c.maxDiff.toFixed(4)} over a range of ${span.toFixed(3)}`);
    assert.ok(c.maxDiff > 0 && c.maxDiff < 0.02 * span, `max difference ${c.maxDiff} of ${span}`);
  });

  it('minElements leaves small weights float with the reason; include/exclude pick nodes; a bad setting is a 400', () => {
    const model = clone(mlp);
    const report = quantizeWeightsDq(model, options({ minElements: 64 }));
    assert.equal(report.nodes, 1, 'fc1 (64 weights) quantized, fc2 (48) not');
    assert.match(report.skipped[0]!.reason, /weight of 48 values \(< minElements 64\)/);
    assert.ok(model.graph.initializers.some((t) => t.name === 'fc2.weight'));
    const excluded = quantizeWeightsDq(clone(resnet), options({ exclude: ['Conv'] }));
    assert.equal(excluded.nodes, 1);
    assert.ok(excluded.skipped.every((s) => s.reason === 'excluded (op type Conv)'));
    assert.throws(
      () =>
        new WeightDqTransform().transform(clone(mlp), {
          model: 'mlp',
          kind: 'tensor',
          path: 'model.onnx',
          options: { blockSize: 32 },
        }),
      (err: Error & { status?: number }) =>
        err.status === 400 && /int8-dq: unknown setting "blockSize"/.test(err.message),
    );
  });

  it('nucleus quantize -m int8-dq: the report gives size, top-1 agreement and the tolerance the written model keeps', async function () {
    this.timeout(180_000);
    const source = join(dir, 'tabular-mlp.onnx');
    await writeFile(source, tabularMlp().encode());
    const out = join(dir, 'tabular-dq');
    const held = join(dir, 'held-out.jsonl');
    const rng = new SeededRandom(77);
    await writeFile(
      held,
      Array.from({ length: 512 }, () => JSON.stringify({ input: Array.from(rng.normals(64, 1)) })).join('\n'),
    );
    const run = await runCli(['quantize', source, '-m', 'int8-dq', '-o', out, '--eval', held]);
    assert.equal(run.code, 0, run.err);
    const report = JSON.parse(readFileSync(join(out, 'report.json'), 'utf8')) as {
      method: string;
      sizeBytes: { ratio: number };
      accuracy: { top1Agreement: number; outputs: Record<string, { maxAbsDiff: number }> };
    };
    assert.equal(report.method, 'int8-dq');
    assert.ok(report.sizeBytes.ratio >= 3.5, `ratio ${report.sizeBytes.ratio}`);
    assert.ok(report.accuracy.top1Agreement >= 0.99, `agreement ${report.accuracy.top1Agreement}`);
    // 64 other rows stay within twice the tolerance measured on the 512 held-out ones.
    const feeds = { input: new ort.Tensor('float32', new SeededRandom(5).normals(64 * 64, 1), [64, 64]) };
    const [f, q] = await Promise.all([run1(source, feeds), run1(join(out, 'model.onnx'), feeds)]);
    const c = compare(f, q, 10);
    const reported = report.accuracy.outputs.logits!.maxAbsDiff;
    assert.ok(c.maxDiff > 0 && c.maxDiff < 2 * reported, `max ${c.maxDiff}, reported ${reported}`);
  });
});

async function run1(path: string, feeds: Record<string, ort.Tensor>): Promise<Float32Array> {
  const session = await ort.InferenceSession.create(path, { intraOpNumThreads: 1 });
  try {
    return (await session.run(feeds)).logits!.data as Float32Array;
  } finally {
    await session.release();
  }
}
