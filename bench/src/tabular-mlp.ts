import { SeededRandom } from '@nucleus/sdk';
import { GraphBuilder } from '@nucleus/sdk/onnx';

/** Layer widths of the generated tabular MLP: 64 features, two hidden layers of 512, 10 classes. */
export const TABULAR_MLP_WIDTHS = [64, 512, 512, 10] as const;

/**
 * A tabular MLP big enough that its weights are the file (64 → 512 → 512 → 10, Gemm + Relu, He-initialised random
 * weights, seed 31; 300 K weights, 1.2 MB): the shape of a real tabular classifier, where the built-in 4 → 16 → 3
 * MLP is too small for its weights to matter. Output `logits` [batch, 10].
 */
export function buildTabularMlp(widths: readonly number[] = TABULAR_MLP_WIDTHS): Uint8Array {
  const rng = new SeededRandom(31);
  const g = new GraphBuilder('tabular_mlp');
  let x = g.input('input', 'float32', ['batch', widths[0]!]);
  for (let i = 1; i < widths.length; i++) {
    const [cin, cout] = [widths[i - 1]!, widths[i]!];
    const w = g.initializer(`fc${i}.weight`, rng.normals(cout * cin, Math.sqrt(2 / cin)), [cout, cin]);
    const b = g.initializer(`fc${i}.bias`, rng.normals(cout, 0.05), [cout]);
    const last = i === widths.length - 1;
    const y = g.ops.gemm(x, w, b, { transB: true }, last ? { outputs: ['logits'] } : {});
    x = last ? y : g.ops.relu(y);
  }
  g.output(x, 'float32', ['batch', widths.at(-1)!]);
  return g.toModel({ producer: 'nucleus-bench', docString: 'Tabular MLP, random weights.' }).encode();
}
