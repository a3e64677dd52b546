import { strict as assert } from 'node:assert';
import { rmSync } from 'node:fs';
import type { Explanation } from '@nucleus/sdk';
import { GraphBuilder } from '@nucleus/sdk/onnx';
import { startTestKernel, type TestKernel } from '@nucleus/sdk/testing';
import { writeVersion } from '../engine/engine-fixtures.js';
import { tempDir } from '../helpers/paths.js';
import { API_KSERVE, errorOf } from '../api-kserve/kserve-fixtures.js';
import { pluginDir } from '../observability/helpers.js';

/** Feature 0 drives the output; the others barely matter. */
const W = [3, 0.2, -0.1, 0.05];
const B = 0.5;
const MEANS = [1, -2, 0.5, 3];
const NAMES = ['driver', 'minor_a', 'minor_b', 'minor_c'];

/** y = x·W + b over 4 features, output [batch, 1]. */
function linearModel(): Uint8Array {
  const g = new GraphBuilder('linear');
  const x = g.input('x', 'float32', ['batch', 4]);
  const w = g.constant(W, [4, 1]);
  const y = g.ops.add(g.ops.matMul(x, w), B, { outputs: ['y'] });
  g.output(y, 'float32', ['batch', 1]);
  return g.toModel({ producer: 'nucleus-test' }).encode();
}

/** softmax([0, 3·x0 + 0.1·x1]) over 4 features: a two-class classifier driven by feature 0. */
function softmaxModel(): Uint8Array {
  const g = new GraphBuilder('softmax');
  const x = g.input('x', 'float32', ['batch', 4]);
  const w = g.constant([0, 3, 0, 0.1, 0, 0, 0, 0], [4, 2]);
  const p = g.ops.softmax(g.ops.matMul(x, w), -1, { outputs: ['probabilities'] });
  g.output(p, 'float32', ['batch', 2]);
  return g.toModel({ producer: 'nucleus-test' }).encode();
}

const trainingStatistics = {
  features: NAMES.map((name, j) => ({ name, mean: MEANS[j]!, std: 1, min: MEANS[j]! - 4, max: MEANS[j]! + 4 })),
};

describe('model-insight: explanations of a model whose true attributions are known', () => {
  let kit: TestKernel;
  let dir: string;
  before(async () => {
    dir = tempDir('model-insight');
    writeVersion(`${dir}/models`, 'linear', '1', linearModel(), { trainingStatistics });
    writeVersion(`${dir}/models`, 'softmax', '1', softmaxModel(), { trainingStatistics, labels: ['no', 'yes'] });
    kit = await startTestKernel({
      plugins: [API_KSERVE, pluginDir('model-insight')],
      config: { modelRepository: `${dir}/models` },
    });
  });
  after(async () => {
    await kit.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const rows = [
    [2.5, -1, 0, 4],
    [-1, -3, 2, 2],
  ];
  const v2 = (data: number[][]) => ({
    inputs: [{ name: 'x', shape: [data.length, 4], datatype: 'FP32', data: data.flat() }],
  });

  it('gives Kernel SHAP values of a linear model equal to w_i·(x_i − E[x_i]), with base value f(E[x])', async () => {
    const res = await kit.request('/v2/models/linear/explain', { body: v2(rows) });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    const e = res.body as Explanation;
    assert.equal(e.method, 'kernel_shap');
    assert.equal(e.reference, 'training');
    assert.equal(e.rows!.length, 2);
    // Every perturbed row of both explained rows went in one session run.
    assert.equal(e.runs, 1);
    const base = W.reduce((s, w, j) => s + w * MEANS[j]!, B);
    rows.forEach((x, n) => {
      const row = e.rows![n]!;
      assert.ok(Math.abs(row.baseValue![0]! - base) < 1e-4, `base ${row.baseValue} vs ${base}`);
      assert.deepEqual(
        row.features.map((f) => f.feature),
        NAMES,
      );
      row.features.forEach((f, j) => {
        const expected = W[j]! * (x[j]! - MEANS[j]!);
        assert.ok(Math.abs(f.attributions[0]! - expected) < 1e-4, `${f.feature}: ${f.attributions[0]} vs ${expected}`);
      });
      const sum = row.features.reduce((s, f) => s + f.attributions[0]!, 0);
      assert.ok(Math.abs(row.baseValue![0]! + sum - row.prediction[0]!) < 1e-4);
    });
  });

  it('explains a softmax classifier per class, with the driving feature dominant and attributions adding up', async () => {
    const res = await kit.request('/v2/models/softmax/explain', { body: v2(rows) });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    const e = res.body as Explanation;
    assert.deepEqual(e.columns, ['no', 'yes']);
    for (const row of e.rows!) {
      for (let c = 0; c < 2; c++) {
        const sum = row.features.reduce((s, f) => s + f.attributions[c]!, 0);
        assert.ok(Math.abs(row.baseValue![c]! + sum - row.prediction[c]!) < 1e-4);
      }
      const magnitude = row.features.map((f) => Math.abs(f.attributions[1]!));
      assert.equal(magnitude.indexOf(Math.max(...magnitude)), 0, JSON.stringify(row));
      // Features the graph never reads get nothing.
      assert.ok(magnitude[2]! < 1e-6 && magnitude[3]! < 1e-6, JSON.stringify(magnitude));
    }
  });

  it('ranks the driving feature first by permutation importance, and a feature the model ignores last', async () => {
    for (const model of ['linear', 'softmax']) {
      const res = await kit.request(`/v2/models/${model}/explain`, { body: { ...v2(rows), method: 'permutation' } });
      assert.equal(res.status, 200, JSON.stringify(res.body));
      const e = res.body as Explanation;
      assert.equal(e.importance![0]!.feature, 'driver', JSON.stringify(e.importance));
      assert.ok(e.importance![0]!.importance > 5 * e.importance![1]!.importance, JSON.stringify(e.importance));
      assert.equal(e.runs, 1);
    }
  });

  it('answers /infer with explain: true with the prediction and its explanation', async () => {
    const res = await kit.request('/infer', { body: { model: 'linear', inputs: { x: [rows[0]] }, explain: true } });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    const body = res.body as { outputs: { y: number[][] }; explanation: Explanation };
    const expected = W.reduce((s, w, j) => s + w * rows[0]![j]!, B);
    assert.ok(Math.abs(body.outputs.y[0]![0]! - expected) < 1e-4);
    assert.ok(Math.abs(body.explanation.rows![0]!.features[0]!.attributions[0]! - 3 * 1.5) < 1e-4);
    const plain = await kit.request('/infer', { body: { model: 'linear', inputs: { x: [rows[0]] } } });
    assert.equal((plain.body as { explanation?: unknown }).explanation, undefined);
  });

  it('refuses bad input with a 4xx that says what is wrong', async () => {
    const unknown = await kit.request('/v2/models/nope/explain', { body: v2(rows) });
    assert.equal(unknown.status, 404);
    const shape = await kit.request('/v2/models/linear/explain', {
      body: { inputs: [{ name: 'x', shape: [1, 5], datatype: 'FP32', data: [1, 2, 3, 4, 5] }] },
    });
    assert.equal(shape.status, 400);
    assert.equal(errorOf(shape).code, 'invalid_shape');
    assert.match(errorOf(shape).message, /whole rows of 4 values/);
    const method = await kit.request('/v2/models/linear/explain', { body: { ...v2(rows), method: 'lime' } });
    assert.equal(method.status, 400);
    assert.equal(errorOf(method).code, 'invalid_method');
    const text = await kit.request('/v2/models/linear/explain', {
      body: { inputs: [{ name: 'x', shape: [1, 4], datatype: 'FP32', data: [1, 'a', 3, 4] }] },
    });
    assert.equal(text.status, 400);
    const flag = await kit.request('/infer', { body: { model: 'linear', inputs: { x: [rows[0]] }, explain: 'yes' } });
    assert.equal(flag.status, 400);
  });
});

describe('model-insight: models that cannot be explained', () => {
  let kit: TestKernel;
  before(async () => {
    kit = await startTestKernel({ plugins: [API_KSERVE, pluginDir('model-insight')] });
  });
  after(() => kit.stop());

  it('refuses an LLM with 400 not_explainable', async () => {
    const res = await kit.request('/v2/models/tiny-llama/explain', {
      body: { inputs: [{ name: 'x', shape: [1, 1], datatype: 'FP32', data: [1] }] },
    });
    assert.equal(res.status, 400, JSON.stringify(res.body));
    assert.equal(errorOf(res).code, 'not_explainable');
  });

  it('explains the built-in tabular classifier against its standardised features', async () => {
    const res = await kit.request('/v2/models/tabular-classifier/explain', {
      body: { inputs: [{ name: 'features', shape: [1, 8], datatype: 'FP32', data: [1, -1, 0.5, 0, 2, -0.5, 1, 0] }] },
    });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    const e = res.body as Explanation;
    assert.equal(e.rows![0]!.features[0]!.feature, 'age');
    assert.equal(e.columns.length, 3);
    for (let c = 0; c < 3; c++) {
      const row = e.rows![0]!;
      const sum = row.features.reduce((s, f) => s + f.attributions[c]!, 0);
      assert.ok(Math.abs(row.baseValue![c]! + sum - row.prediction[c]!) < 1e-4);
    }
  });
});
