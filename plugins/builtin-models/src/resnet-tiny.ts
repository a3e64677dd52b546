import { GraphBuilder, type Value } from '@nucleus/sdk/onnx';
import type { GeneratedModel, BuiltinModelGenerator } from './builtin-model.js';
import { SeededRandom } from '@nucleus/sdk';

const NAME = 'resnet-tiny';
const CLASSES = 10;
const SIZE = 224;

/**
 * A ResNet-shaped image classifier small enough for CPU tests (≈9 M multiply-adds per image):
 * stem conv/2 + maxpool/2, one identity residual block (8 ch), one downsampling block (16 ch, 1×1 projection
 * shortcut), global average pool, Gemm to 10 logits. Random He-initialised weights, seed 3.
 */
export function buildResnetTiny(): GeneratedModel {
  const rng = new SeededRandom(3);
  const g = new GraphBuilder('resnet_tiny');

  const conv = (x: Value, name: string, cin: number, cout: number, k: number, stride: number): Value => {
    const w = g.initializer(`${name}.weight`, rng.normals(cout * cin * k * k, Math.sqrt(2 / (cin * k * k))), [
      cout,
      cin,
      k,
      k,
    ]);
    const b = g.initializer(`${name}.bias`, rng.normals(cout, 0.01), [cout]);
    const p = (k - 1) / 2;
    return g.ops.conv(x, w, b, { kernelShape: [k, k], strides: [stride, stride], pads: [p, p, p, p] }, { name });
  };

  const input = g.input('input', 'float32', ['batch', 3, SIZE, SIZE]);
  const stem = g.ops.maxPool(g.ops.relu(conv(input, 'stem', 3, 8, 3, 2)), { kernelShape: [2, 2], strides: [2, 2] });

  const a1 = g.ops.relu(conv(stem, 'block1.conv1', 8, 8, 3, 1));
  const block1 = g.ops.relu(g.ops.add(conv(a1, 'block1.conv2', 8, 8, 3, 1), stem));

  const a2 = g.ops.relu(conv(block1, 'block2.conv1', 8, 16, 3, 2));
  const shortcut = conv(block1, 'block2.shortcut', 8, 16, 1, 2);
  const block2 = g.ops.relu(g.ops.add(conv(a2, 'block2.conv2', 16, 16, 3, 1), shortcut));

  const pooled = g.ops.flatten(g.ops.globalAveragePool(block2), 1);
  const fcW = g.initializer('fc.weight', rng.normals(CLASSES * 16, Math.sqrt(1 / 16)), [CLASSES, 16]);
  const fcB = g.initializer('fc.bias', rng.normals(CLASSES, 0.01), [CLASSES]);
  const logits = g.ops.gemm(pooled, fcW, fcB, { transB: true }, { outputs: ['logits'] });
  g.output(logits, 'float32', ['batch', CLASSES]);

  return {
    bytes: g.toModel({ producer: 'nucleus', docString: 'Built-in tiny ResNet-style CNN fixture.' }).encode(),
    metadata: {
      name: NAME,
      version: 1,
      description: 'Tiny ResNet-style CNN over 3×224×224 images, 10 classes, random weights.',
      task: 'classification',
      inputs: [
        {
          name: 'input',
          dtype: 'float32',
          shape: ['batch', 3, SIZE, SIZE],
          description: 'Images, NCHW, normalised RGB.',
        },
      ],
      outputs: [
        { name: 'logits', dtype: 'float32', shape: ['batch', CLASSES], description: 'Unnormalised class scores.' },
      ],
      labels: Array.from({ length: CLASSES }, (_, i) => `class_${i}`),
      config: { imageSize: SIZE, channels: 3, classes: CLASSES },
    },
  };
}

/** The tiny ResNet generator. */
export const resnetTiny: BuiltinModelGenerator = { name: NAME, revision: 1, build: buildResnetTiny };
