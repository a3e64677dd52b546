import { GraphBuilder } from '@nucleus/sdk/onnx';
import type { GeneratedModel, BuiltinModelGenerator } from './builtin-model.js';
import { SeededRandom } from '@nucleus/sdk';

const NAME = 'multi-io';
const FEATURES = 6;
const CATEGORIES = 5;
const EMBEDDING = 4;

/**
 * Two inputs of different shapes and dtypes (`features` float32 [batch, 6], `category` int64 [batch]) and two
 * outputs of different dtypes (`embedding` float32 [batch, 4], `bucket` int64 [batch]); random weights, seed 2.
 */
export function buildMultiIoModel(): GeneratedModel {
  const rng = new SeededRandom(2);
  const g = new GraphBuilder('multi_io');
  const features = g.input('features', 'float32', ['batch', FEATURES]);
  const category = g.input('category', 'int64', ['batch']);
  const table = g.initializer('category_embedding', rng.normals(CATEGORIES * FEATURES, 0.5), [CATEGORIES, FEATURES]);
  const w = g.initializer('proj.weight', rng.normals(FEATURES * EMBEDDING, Math.sqrt(1 / FEATURES)), [
    FEATURES,
    EMBEDDING,
  ]);
  const b = g.initializer('proj.bias', rng.normals(EMBEDDING, 0.1), [EMBEDDING]);

  const mixed = g.ops.add(features, g.ops.gather(table, category, 0));
  const embedding = g.ops.tanh(g.ops.add(g.ops.matMul(mixed, w), b), { outputs: ['embedding'] });
  const bucket = g.ops.argMax(embedding, { axis: 1, keepdims: false }, { outputs: ['bucket'] });
  g.output(embedding, 'float32', ['batch', EMBEDDING]);
  g.output(bucket, 'int64', ['batch']);

  return {
    bytes: g.toModel({ producer: 'nucleus', docString: 'Built-in multi-input/multi-output fixture.' }).encode(),
    metadata: {
      name: NAME,
      version: 1,
      description:
        'Two inputs (float features, int64 category) and two outputs (float embedding, int64 bucket); random weights.',
      task: 'embedding',
      inputs: [
        {
          name: 'features',
          dtype: 'float32',
          shape: ['batch', FEATURES],
          description: 'Six numeric features per row.',
        },
        {
          name: 'category',
          dtype: 'int64',
          shape: ['batch'],
          description: `Category index per row, 0 to ${CATEGORIES - 1}.`,
        },
      ],
      outputs: [
        {
          name: 'embedding',
          dtype: 'float32',
          shape: ['batch', EMBEDDING],
          description: 'tanh(W·(features + category embedding) + b).',
        },
        { name: 'bucket', dtype: 'int64', shape: ['batch'], description: 'Index of the largest embedding component.' },
      ],
      config: { features: FEATURES, categories: CATEGORIES, embedding: EMBEDDING },
    },
  };
}

/** The multi-input/multi-output generator. */
export const multiIoModel: BuiltinModelGenerator = { name: NAME, revision: 1, build: buildMultiIoModel };
