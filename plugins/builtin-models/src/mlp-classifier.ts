import { GraphBuilder } from '@nucleus/sdk/onnx';
import type { GeneratedModel, BuiltinModelGenerator } from './builtin-model.js';
import { SeededRandom } from '@nucleus/sdk';

const NAME = 'mlp-classifier';
const FEATURES = 4;
const HIDDEN = 16;
const CLASSES = 3;

/** A 4 → 16 → 3 MLP with softmax probabilities and an argmax label (random weights, seed 1). */
export function buildMlpClassifier(): GeneratedModel {
  const rng = new SeededRandom(1);
  const g = new GraphBuilder('mlp_classifier');
  const x = g.input('input', 'float32', ['batch', FEATURES]);
  const w1 = g.initializer('fc1.weight', rng.normals(FEATURES * HIDDEN, Math.sqrt(2 / FEATURES)), [FEATURES, HIDDEN]);
  const b1 = g.initializer('fc1.bias', rng.normals(HIDDEN, 0.1), [HIDDEN]);
  const w2 = g.initializer('fc2.weight', rng.normals(HIDDEN * CLASSES, Math.sqrt(1 / HIDDEN)), [HIDDEN, CLASSES]);
  const b2 = g.initializer('fc2.bias', rng.normals(CLASSES, 0.1), [CLASSES]);

  const h = g.ops.relu(g.ops.gemm(x, w1, b1));
  const logits = g.ops.gemm(h, w2, b2);
  const probabilities = g.ops.softmax(logits, -1, { outputs: ['probabilities'] });
  const label = g.ops.argMax(logits, { axis: 1, keepdims: false }, { outputs: ['label'] });
  g.output(probabilities, 'float32', ['batch', CLASSES]);
  g.output(label, 'int64', ['batch']);

  const bytes = g.toModel({ producer: 'nucleus', docString: 'Built-in MLP classifier fixture.' }).encode();
  return {
    bytes,
    metadata: {
      name: NAME,
      version: 1,
      description: 'Tiny MLP classifier (4 features, 3 classes) with random weights, for tests and demos.',
      task: 'classification',
      inputs: [
        { name: 'input', dtype: 'float32', shape: ['batch', FEATURES], description: 'Four numeric features per row.' },
      ],
      outputs: [
        {
          name: 'probabilities',
          dtype: 'float32',
          shape: ['batch', CLASSES],
          description: 'Softmax class probabilities.',
        },
        { name: 'label', dtype: 'int64', shape: ['batch'], description: 'Index of the most probable class.' },
      ],
      labels: Array.from({ length: CLASSES }, (_, i) => `class_${i}`),
      config: { features: FEATURES, hidden: HIDDEN, classes: CLASSES },
    },
  };
}

/** The MLP classifier generator. */
export const mlpClassifier: BuiltinModelGenerator = { name: NAME, revision: 1, build: buildMlpClassifier };
