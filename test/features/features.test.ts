import { strict as assert } from 'node:assert';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { startTestKernel, type TestKernel } from '@nucleus/sdk/testing';
import { REPO_ROOT, tempDir } from '../helpers/paths.js';
import { scaleModel, writeVersion } from '../engine/engine-fixtures.js';
import { API_KSERVE, errorOf } from '../api-kserve/kserve-fixtures.js';

const FEATURES = join(REPO_ROOT, 'plugins/features');

/** The tabular model's declared statistics (plugins/builtin-models/src/tabular-classifier.ts), by hand. */
const STATS: Array<[string, number, number]> = [
  ['age', 41.5, 12.3],
  ['annual_income', 52000, 21000],
  ['debt_ratio', 0.35, 0.18],
  ['open_credit_lines', 8.2, 4.9],
  ['late_payments_12m', 0.6, 1.1],
  ['years_employed', 7.4, 6.8],
  ['loan_amount', 15500, 9200],
  ['savings_balance', 9800, 12500],
];

const applicant = {
  age: 29,
  annual_income: 38000,
  debt_ratio: 0.52,
  open_credit_lines: 3,
  late_payments_12m: 2,
  years_employed: 1.5,
  loan_amount: 22000,
  savings_balance: 1200,
};
const retiree = {
  age: 67,
  annual_income: 61000,
  debt_ratio: 0.1,
  open_credit_lines: 12,
  late_payments_12m: 0,
  years_employed: 30,
  loan_amount: 5000,
  savings_balance: 90000,
};

function standardize(record: Record<string, number>): number[] {
  return STATS.map(([name, mean, std]) => (record[name]! - mean) / std);
}

describe('features plugin: named features to the tabular model', () => {
  let kit: TestKernel;
  before(async () => {
    kit = await startTestKernel({ plugins: [API_KSERVE, FEATURES] });
  });
  after(() => kit.stop());

  it('answers /infer with features exactly as a manual standardise-then-infer call', async () => {
    const manual = await kit.request('/infer', {
      body: { model: 'tabular-classifier', inputs: { features: [standardize(applicant)] } },
    });
    const hooked = await kit.request('/infer', { body: { model: 'tabular-classifier', features: applicant } });
    assert.equal(hooked.status, 200, JSON.stringify(hooked.body));
    assert.deepEqual(hooked.body, manual.body);
  });

  it('answers /v2/.../infer with features, and records as a batch', async () => {
    const manual = await kit.request('/v2/models/tabular-classifier/infer', {
      body: {
        inputs: [
          {
            name: 'features',
            shape: [2, 8],
            datatype: 'FP32',
            data: [...standardize(applicant), ...standardize(retiree)],
          },
        ],
      },
    });
    const hooked = await kit.request('/v2/models/tabular-classifier/infer', {
      body: { records: [applicant, retiree] },
    });
    assert.equal(hooked.status, 200, JSON.stringify(hooked.body));
    assert.deepEqual(hooked.body, manual.body);
    const single = await kit.request('/v2/models/tabular-classifier/infer', { body: { features: retiree } });
    const outputs = (single.body as { outputs: Array<{ name: string; data: number[] }> }).outputs;
    const batchOutputs = (hooked.body as { outputs: Array<{ name: string; data: number[] }> }).outputs;
    assert.deepEqual(outputs.find((o) => o.name === 'label')!.data, [
      batchOutputs.find((o) => o.name === 'label')!.data[1],
    ]);
  });

  it('refuses unknown feature names with a 400 naming them', async () => {
    const res = await kit.request('/infer', {
      body: { model: 'tabular-classifier', features: { ...applicant, shoe_size: 44, zodiac: 'leo' } },
    });
    assert.equal(res.status, 400);
    const error = errorOf(res);
    assert.equal(error.code, 'unknown_feature');
    assert.match(error.message, /'shoe_size', 'zodiac'/);
    assert.equal(error.param, 'shoe_size');
  });

  it('refuses a missing feature the model gives no default for, and features for a model without preprocessing', async () => {
    const { age: _age, ...noAge } = applicant;
    const missing = await kit.request('/infer', { body: { model: 'tabular-classifier', features: noAge } });
    assert.deepEqual([missing.status, errorOf(missing).code, errorOf(missing).param], [400, 'missing_feature', 'age']);
    const other = await kit.request('/infer', { body: { model: 'mlp-classifier', features: { a: 1 } } });
    assert.deepEqual([other.status, errorOf(other).code], [400, 'no_preprocessing']);
  });
});

describe('features plugin: one-hot vocabularies and defaults from model.json', () => {
  let kit: TestKernel;
  let dir: string;
  before(async () => {
    dir = tempDir('features');
    writeVersion(`${dir}/models`, 'scale', '1', scaleModel(1), {
      preprocessing: {
        type: 'features',
        input: 'x',
        features: [
          { name: 'color', vocabulary: ['red', 'green'], default: 'green' },
          { name: 'size', mean: 10, std: 2, default: 10 },
          { name: 'flag', default: 0 },
        ],
      },
    });
    kit = await startTestKernel({ plugins: [API_KSERVE, FEATURES], config: { modelRepository: `${dir}/models` } });
  });
  after(async () => {
    await kit.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('one-hot encodes categories, standardises numbers and fills defaults', async () => {
    const res = await kit.request('/infer', {
      body: { model: 'scale', records: [{ color: 'red', size: 14, flag: 1 }, {}, { size: null, flag: true }] },
    });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.deepEqual((res.body as { outputs: { y: number[][] } }).outputs.y, [
      [1, 0, 2, 1],
      [0, 1, 0, 0],
      [0, 1, 0, 1],
    ]);
  });

  it('refuses a category outside the vocabulary, naming the feature and record', async () => {
    const res = await kit.request('/infer', {
      body: { model: 'scale', records: [{ color: 'red' }, { color: 'blue' }] },
    });
    assert.equal(res.status, 400);
    assert.equal(errorOf(res).param, 'color');
    assert.match(errorOf(res).message, /record 1.*"blue".*"red", "green"/);
  });
});
