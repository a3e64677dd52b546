import { existsSync } from 'node:fs';
import { mkdir, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { SeededRandom } from '@nucleus/sdk';
import { GraphBuilder, type Value } from '@nucleus/sdk/onnx';

const SIZE = 224;
const CLASSES = 1000;
// Bump when the graph changes, so a cached file from an older build is not measured.
const REVISION = 1;

/**
 * ResNet-18 as torchvision lays it out (7×7/2 stem, 3×3/2 max pool, four stages of two basic blocks at 64, 128,
 * 256 and 512 channels, 1×1/2 projection shortcuts, global average pool, 1000-way Gemm) with batch norm folded
 * into the convolutions, as an exported and optimised model has it. 11.7 M random He-initialised weights (seed 18),
 * ≈1.8 G multiply-adds per image: the compute of the real model, so the server's overhead is measured against it.
 */
export function buildResnet18(): Uint8Array {
  const rng = new SeededRandom(18);
  const g = new GraphBuilder('resnet18');
  const conv = (x: Value, name: string, cin: number, cout: number, k: number, stride: number): Value => {
    const w = g.initializer(`${name}.weight`, rng.normals(cout * cin * k * k, Math.sqrt(2 / (cin * k * k))), [
      cout,
      cin,
      k,
      k,
    ]);
    const b = g.initializer(`${name}.bias`, rng.normals(cout, 0.01), [cout]);
    const p = (k - 1) >> 1;
    return g.ops.conv(x, w, b, { kernelShape: [k, k], strides: [stride, stride], pads: [p, p, p, p] }, { name });
  };
  const block = (x: Value, name: string, cin: number, cout: number, stride: number): Value => {
    const a = g.ops.relu(conv(x, `${name}.conv1`, cin, cout, 3, stride));
    const b = conv(a, `${name}.conv2`, cout, cout, 3, 1);
    const shortcut = stride === 1 && cin === cout ? x : conv(x, `${name}.downsample`, cin, cout, 1, stride);
    return g.ops.relu(g.ops.add(b, shortcut));
  };

  const input = g.input('input', 'float32', ['batch', 3, SIZE, SIZE]);
  let x = g.ops.relu(conv(input, 'conv1', 3, 64, 7, 2));
  x = g.ops.maxPool(x, { kernelShape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1] });
  let cin = 64;
  for (const [stage, cout] of [64, 128, 256, 512].entries()) {
    x = block(x, `layer${stage + 1}.0`, cin, cout, stage === 0 ? 1 : 2);
    x = block(x, `layer${stage + 1}.1`, cout, cout, 1);
    cin = cout;
  }
  const pooled = g.ops.flatten(g.ops.globalAveragePool(x), 1);
  const fcW = g.initializer('fc.weight', rng.normals(CLASSES * 512, Math.sqrt(1 / 512)), [CLASSES, 512]);
  const fcB = g.initializer('fc.bias', rng.normals(CLASSES, 0.01), [CLASSES]);
  g.output(g.ops.gemm(pooled, fcW, fcB, { transB: true }, { outputs: ['logits'] }), 'float32', ['batch', CLASSES]);
  return g.toModel({ producer: 'nucleus-bench', docString: 'ResNet-18-shaped CNN, random weights.' }).encode();
}

/** Writes the model once into `cacheDir` (as `resnet18/1/model.onnx`, a model repository) and returns its folder. */
export async function ensureResnet18(cacheDir: string): Promise<{ dir: string; modelPath: string }> {
  const dir = join(cacheDir, `resnet18-r${REVISION}`);
  const modelPath = join(dir, '1', 'model.onnx');
  if (!existsSync(modelPath)) {
    await mkdir(join(dir, '1'), { recursive: true });
    await writeFile(`${modelPath}.tmp`, buildResnet18());
    await rename(`${modelPath}.tmp`, modelPath);
  }
  return { dir, modelPath };
}
