import { GraphBuilder, attr } from '@nucleus/sdk/onnx';
import type { GeneratedModel, BuiltinModelGenerator, FeatureSpec } from './builtin-model.js';
import { SeededRandom } from '@nucleus/sdk';

const NAME = 'tabular-classifier';
const TREES = 6;
const DEPTH = 3;
const LABELS = ['low_risk', 'medium_risk', 'high_risk'];

/** The raw features, in input order, with the statistics used to standardise them. */
export const TABULAR_FEATURES: readonly FeatureSpec[] = [
  { name: 'age', mean: 41.5, std: 12.3 },
  { name: 'annual_income', mean: 52000, std: 21000 },
  { name: 'debt_ratio', mean: 0.35, std: 0.18 },
  { name: 'open_credit_lines', mean: 8.2, std: 4.9 },
  { name: 'late_payments_12m', mean: 0.6, std: 1.1 },
  { name: 'years_employed', mean: 7.4, std: 6.8 },
  { name: 'loan_amount', mean: 15500, std: 9200 },
  { name: 'savings_balance', mean: 9800, std: 12500 },
];

/**
 * A gradient-boosting-style forest (ai.onnx.ml TreeEnsembleClassifier, ml opset 3) over 8 standardised
 * credit features: 6 full trees of depth 3, softmax over 3 risk classes. Random splits and leaf weights, seed 4.
 */
export function buildTabularClassifier(): GeneratedModel {
  const rng = new SeededRandom(4);
  const F = TABULAR_FEATURES.length;
  const internal = 2 ** DEPTH - 1;
  const perTree = 2 ** (DEPTH + 1) - 1;

  const nodes = {
    treeIds: [] as number[],
    nodeIds: [] as number[],
    featureIds: [] as number[],
    values: [] as number[],
    modes: [] as string[],
    trueIds: [] as number[],
    falseIds: [] as number[],
  };
  const leaves = {
    treeIds: [] as number[],
    nodeIds: [] as number[],
    classIds: [] as number[],
    weights: [] as number[],
  };
  for (let t = 0; t < TREES; t++) {
    // Heap layout: node i branches to 2i+1 (x ≤ threshold) and 2i+2; ids ≥ `internal` are leaves.
    for (let i = 0; i < perTree; i++) {
      nodes.treeIds.push(t);
      nodes.nodeIds.push(i);
      if (i < internal) {
        nodes.featureIds.push(rng.int(F));
        nodes.values.push(Math.fround(rng.normal(0.8)));
        nodes.modes.push('BRANCH_LEQ');
        nodes.trueIds.push(2 * i + 1);
        nodes.falseIds.push(2 * i + 2);
      } else {
        nodes.featureIds.push(0);
        nodes.values.push(0);
        nodes.modes.push('LEAF');
        nodes.trueIds.push(0);
        nodes.falseIds.push(0);
        for (let c = 0; c < LABELS.length; c++) {
          leaves.treeIds.push(t);
          leaves.nodeIds.push(i);
          leaves.classIds.push(c);
          leaves.weights.push(Math.fround(rng.normal(0.5)));
        }
      }
    }
  }

  const g = new GraphBuilder('tabular_classifier');
  const x = g.input('features', 'float32', ['batch', F]);
  const [label, probabilities] = g.nodeMulti(
    'TreeEnsembleClassifier',
    [x],
    2,
    {
      nodes_treeids: attr.ints(nodes.treeIds),
      nodes_nodeids: attr.ints(nodes.nodeIds),
      nodes_featureids: attr.ints(nodes.featureIds),
      nodes_values: attr.floats(nodes.values),
      nodes_modes: attr.strings(nodes.modes),
      nodes_truenodeids: attr.ints(nodes.trueIds),
      nodes_falsenodeids: attr.ints(nodes.falseIds),
      class_treeids: attr.ints(leaves.treeIds),
      class_nodeids: attr.ints(leaves.nodeIds),
      class_ids: attr.ints(leaves.classIds),
      class_weights: attr.floats(leaves.weights),
      classlabels_int64s: attr.ints(LABELS.map((_, i) => i)),
      post_transform: 'SOFTMAX',
    },
    { domain: 'ai.onnx.ml', outputs: ['label', 'probabilities'] },
  );
  g.output(label!, 'int64', ['batch']);
  g.output(probabilities!, 'float32', ['batch', LABELS.length]);

  return {
    bytes: g
      .toModel({
        producer: 'nucleus',
        opsets: { 'ai.onnx.ml': 3 },
        docString: 'Built-in tree ensemble tabular fixture.',
      })
      .encode(),
    metadata: {
      name: NAME,
      version: 1,
      description:
        'Tree-ensemble credit-risk classifier over 8 named numeric features (standardise them first); random trees.',
      task: 'classification',
      inputs: [
        {
          name: 'features',
          dtype: 'float32',
          shape: ['batch', F],
          description: `Standardised features in this order: ${TABULAR_FEATURES.map((f) => f.name).join(', ')}.`,
        },
      ],
      outputs: [
        { name: 'label', dtype: 'int64', shape: ['batch'], description: 'Index of the predicted risk class.' },
        {
          name: 'probabilities',
          dtype: 'float32',
          shape: ['batch', LABELS.length],
          description: 'Softmax over summed leaf scores.',
        },
      ],
      labels: [...LABELS],
      preprocessing: { type: 'standardize', input: 'features', features: TABULAR_FEATURES.map((f) => ({ ...f })) },
      config: { trees: TREES, depth: DEPTH, features: F, classes: LABELS.length },
    },
  };
}

/** The tabular (tree ensemble) generator. */
export const tabularClassifier: BuiltinModelGenerator = { name: NAME, revision: 1, build: buildTabularClassifier };
