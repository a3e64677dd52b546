import { refusalOf } from '@nucleus/sdk/testing';
import assert from 'node:assert/strict';
import { encodeFeatures, FeatureEncoder, type FeaturePreprocessing, readPreprocessing } from '@nucleus/plugin-features';
import type { InferenceService } from '@nucleus/sdk';

const PREPROCESSING: FeaturePreprocessing = {
  input: 'x',
  features: [
    { name: 'age', mean: 40, std: 10 },
    { name: 'plan', vocabulary: ['free', 'pro', 'team'], default: 'free' },
    { name: 'active' },
    { name: 'score', default: 0.5 },
  ],
};

const encoder = () => new FeatureEncoder(PREPROCESSING, "model 'churn' version '1'");

/** The model lookup encodeFeatures makes: one model, described as the inference service describes it. */
function service(metadata: Record<string, unknown>, dtype = 'float32'): InferenceService {
  return {
    get: (name: string) => ({ name, version: '1', metadata, inputs: [{ name: 'x', dtype, shape: [-1, 6] }] }),
  } as unknown as InferenceService;
}

describe('features: feature encoding', () => {
  it('standardises numbers, one-hot encodes categories and fills defaults, in declared order', () => {
    const e = encoder();
    assert.equal(e.width, 6);
    assert.deepEqual(e.encode([{ age: 55, plan: 'team', active: true, score: 2 }]), {
      data: [1.5, 0, 0, 1, 1, 2],
      shape: [1, 6],
    });
    // Missing and null take the default; a boolean counts as 0 or 1.
    assert.deepEqual(e.encode([{ age: 40, active: false, score: null }]).data, [0, 1, 0, 0, 0, 0.5]);
  });

  it('encodes several records into one matrix, and a zero std passes the value through', () => {
    const e = new FeatureEncoder({ input: 'x', features: [{ name: 'a', mean: 3, std: 0 }, { name: 'b' }] }, 'm');
    assert.deepEqual(
      e.encode([
        { a: 5, b: 1 },
        { a: 7, b: 2 },
      ]),
      { data: [5, 1, 7, 2], shape: [2, 2] },
    );
  });

  it('names what is wrong: an unknown feature, a missing one, a bad category, a non-number', () => {
    assert.deepEqual(
      refusalOf(() => encoder().encode([{ age: 1, active: 1, colour: 'red' }])),
      {
        code: 'unknown_feature',
        message: "model 'churn' version '1' has no feature named 'colour'; its features are age, plan, active, score",
        param: 'colour',
      },
    );
    assert.deepEqual(
      refusalOf(() => encoder().encode([{ age: 1 }, { active: 1 }])),
      {
        code: 'missing_feature',
        message: "feature 'active' (record 0) is missing and model 'churn' version '1' declares no default for it",
        param: 'active',
      },
    );
    assert.deepEqual(
      refusalOf(() => encoder().encode([{ age: 1, active: 1, plan: 'gold' }])),
      {
        code: 'invalid_feature',
        message: 'feature \'plan\' is "gold", which is not one of "free", "pro", "team"',
        param: 'plan',
      },
    );
    assert.equal(
      refusalOf(() => encoder().encode([{ age: '41', active: 1 }])).message,
      'feature \'age\' is "41", but it needs a number',
    );
    assert.equal(refusalOf(() => encoder().encode([[1, 2]])).code, 'invalid_features');
  });

  it('reads a preprocessing section only when it declares an input and named features', () => {
    assert.deepEqual(readPreprocessing({ preprocessing: PREPROCESSING }), PREPROCESSING);
    assert.equal(readPreprocessing({}), undefined);
    assert.equal(readPreprocessing({ preprocessing: { input: 'x' } }), undefined);
    assert.equal(readPreprocessing({ preprocessing: { input: 'x', features: [{ mean: 1 }] } }), undefined);
  });
});

describe('features: the preInference rewrite', () => {
  const metadata = { preprocessing: PREPROCESSING };

  it('a native body gets named inputs, a KServe body a tensor list with its datatype', () => {
    const native = encodeFeatures(
      { model: 'churn', body: { model: 'churn', features: { age: 50, active: 1 } } },
      service(metadata),
    );
    assert.deepEqual(native.body, { model: 'churn', inputs: { x: { data: [1, 1, 0, 0, 1, 0.5], shape: [1, 6] } } });
    const kserve = encodeFeatures(
      { model: 'churn', body: { id: 'r1', records: [{ age: 40, active: 0 }] } },
      service(metadata, 'float64'),
    );
    assert.deepEqual(kserve.body, {
      id: 'r1',
      inputs: [{ name: 'x', shape: [1, 6], datatype: 'FP64', data: [0, 1, 0, 0, 0, 0.5] }],
    });
  });

  it('passes other requests through untouched', () => {
    const input = { model: 'churn', body: { inputs: { x: { data: [1], shape: [1] } } } };
    assert.equal(encodeFeatures(input, service(metadata)), input);
  });

  it('refuses ambiguous bodies, empty records, models without preprocessing and inputs it cannot fill', () => {
    const s = service(metadata);
    assert.match(
      refusalOf(() => encodeFeatures({ model: 'm', body: { features: {}, records: [] } }, s)).message,
      /not both/,
    );
    assert.match(
      refusalOf(() => encodeFeatures({ model: 'm', body: { features: {}, inputs: [] } }, s)).message,
      /not both/,
    );
    assert.equal(refusalOf(() => encodeFeatures({ model: 'm', body: { records: [] } }, s)).param, 'records');
    assert.deepEqual(
      refusalOf(() => encodeFeatures({ model: 'm', body: { features: { a: 1 } } }, service({}))),
      {
        code: 'no_preprocessing',
        message:
          "model 'm' version '1' declares no feature preprocessing in its model.json; send inputs instead of features",
        param: 'features',
      },
    );
    assert.equal(
      refusalOf(() =>
        encodeFeatures({ model: 'm', body: { features: { age: 1, active: 1 } } }, service(metadata, 'int64')),
      ).message,
      "model 'm' version '1' takes int64 for 'x', which feature preprocessing cannot fill",
    );
  });
});
