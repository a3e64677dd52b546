import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { ensureBuiltinModels } from '@nucleus/plugin-builtin-models';
import { loadModel, OnnxModel } from '@nucleus/sdk/onnx';
import { tempDir } from '../helpers/paths.js';

// Graphs rewritten on purpose trip ORT's warnings about unused initializers; they would bury the test output.
ort.env.logLevel = 'fatal';

/** A copy to rewrite, leaving the original to compare with. */
export const clone = (m: OnnxModel): OnnxModel => OnnxModel.decode(m.encode());

/** The op types of a graph's nodes, in order. */
export const ops = (m: OnnxModel): string[] => m.graph.nodes.map((n) => n.opType);

/** Runs `model` once in a fresh single-threaded ORT session and returns one output. */
export async function run(model: OnnxModel, feeds: Record<string, ort.Tensor>, output: string): Promise<Float32Array> {
  const session = await ort.InferenceSession.create(model.encode(), { intraOpNumThreads: 1 });
  try {
    return (await session.run(feeds))[output]!.data as Float32Array;
  } finally {
    await session.release();
  }
}

/** Rows of `width` values: the largest and mean |a − b|, and the share of rows whose largest entry is the same. */
export function compare(
  a: Float32Array,
  b: Float32Array,
  width: number,
): { maxDiff: number; mean: number; agreement: number } {
  let maxDiff = 0;
  let sum = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i]! - b[i]!);
    maxDiff = Math.max(maxDiff, d);
    sum += d;
  }
  const argmax = (x: Float32Array, r: number): number => {
    let best = 0;
    for (let j = 1; j < width; j++) if (x[r * width + j]! > x[r * width + best]!) best = j;
    return best;
  };
  let same = 0;
  const rows = a.length / width;
  for (let r = 0; r < rows; r++) if (argmax(a, r) === argmax(b, r)) same++;
  return { maxDiff, mean: sum / a.length, agreement: same / rows };
}

/**
 * The built-in MLP classifier (4 → 16 → 3) and ResNet-tiny, written to a fresh folder (`dir`, for the caller to
 * remove).
 */
export async function builtinPair(prefix: string): Promise<{ dir: string; mlp: OnnxModel; resnet: OnnxModel }> {
  const dir = tempDir(prefix);
  const [m, r] = await ensureBuiltinModels(join(dir, 'models'), { names: ['mlp-classifier', 'resnet-tiny'] });
  return { dir, mlp: await loadModel(m!.modelPath), resnet: await loadModel(r!.modelPath) };
}
