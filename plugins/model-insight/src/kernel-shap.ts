import { SeededRandom } from '@nucleus/sdk';
import { Matrix, solve } from 'ml-matrix';

/** Runs the model on rows and gives each row's output values (one per column). */
export type Evaluate = (rows: number[][]) => Promise<number[][]>;

/** How Kernel SHAP samples coalitions. */
export interface KernelShapOptions {
  /** Above this many coalitions (2^M − 2 for M features), coalitions are sampled rather than enumerated. */
  maxCoalitions: number;
  seed: number;
}

/** One row's Shapley values: `values[feature][column]`, summing over features to `prediction − baseValue`. */
export interface ShapValues {
  baseValue: number[];
  prediction: number[];
  values: number[][];
}

/** The Shapley kernel weight of a coalition of `size` features out of `m`. */
export function shapleyKernelWeight(m: number, size: number): number {
  return (m - 1) / (binomial(m, size) * size * (m - size));
}

function binomial(n: number, k: number): number {
  let r = 1;
  for (let i = 1; i <= k; i++) r = (r * (n - k + i)) / i;
  return r;
}

/**
 * The coalitions regressed on, with their weights: every proper non-empty subset of the features with its Shapley
 * kernel weight when there are few enough, else `max` subsets drawn in complementary pairs with sizes in proportion
 * to the kernel (each then weighs the same).
 */
export function coalitions(m: number, max: number, seed: number): { masks: boolean[][]; weights: number[] } {
  const all = 2 ** m - 2;
  if (all <= max) {
    const masks: boolean[][] = [];
    const weights: number[] = [];
    for (let bits = 1; bits <= all; bits++) {
      const mask = Array.from({ length: m }, (_, j) => ((bits >> j) & 1) === 1);
      masks.push(mask);
      weights.push(shapleyKernelWeight(m, mask.filter(Boolean).length));
    }
    return { masks, weights };
  }
  const rng = new SeededRandom(seed);
  const sizeWeights = Array.from({ length: m - 1 }, (_, i) => (m - 1) / ((i + 1) * (m - i - 1)));
  const total = sizeWeights.reduce((s, w) => s + w, 0);
  const masks: boolean[][] = [];
  while (masks.length + 2 <= max) {
    let u = rng.next() * total;
    let size = 1;
    while (size < m - 1 && u > sizeWeights[size - 1]!) u -= sizeWeights[size++ - 1]!;
    const order = Array.from({ length: m }, (_, j) => j);
    for (let i = m - 1; i > 0; i--) {
      const k = rng.int(i + 1);
      [order[i], order[k]] = [order[k]!, order[i]!];
    }
    const mask = new Array<boolean>(m).fill(false);
    for (let i = 0; i < size; i++) mask[order[i]!] = true;
    masks.push(
      mask,
      mask.map((b) => !b),
    );
  }
  return { masks, weights: masks.map(() => 1) };
}

/**
 * Kernel SHAP (Lundberg and Lee, 2017): each coalition's value is the model's mean output over the background rows
 * with the coalition's features taken from the explained row; Shapley values are the weighted least-squares fit of
 * those values, constrained to add up to the prediction minus the base value (the mean output over the background).
 * Every perturbed row of every explained row goes to `evaluate` in one call, so the model runs in few large batches.
 */
export async function kernelShap(
  instances: readonly number[][],
  background: readonly number[][],
  evaluate: Evaluate,
  options: KernelShapOptions,
): Promise<{ results: ShapValues[]; evaluatedRows: number }> {
  const m = instances[0]?.length ?? 0;
  const { masks, weights } = m > 1 ? coalitions(m, options.maxCoalitions, options.seed) : { masks: [], weights: [] };
  const rows: number[][] = [...background, ...instances];
  for (const x of instances)
    for (const mask of masks) for (const b of background) rows.push(b.map((v, j) => (mask[j] ? x[j]! : v)));
  const out = await evaluate(rows);
  const columns = out[0]?.length ?? 0;
  const mean = (from: number, count: number): number[] => {
    const sum = new Array<number>(columns).fill(0);
    for (let i = from; i < from + count; i++) for (let c = 0; c < columns; c++) sum[c]! += out[i]![c]!;
    return sum.map((s) => s / count);
  };
  const baseValue = mean(0, background.length);
  const results = instances.map((_, n) => {
    const prediction = out[background.length + n]!.slice();
    const delta = prediction.map((p, c) => p - baseValue[c]!);
    if (m === 1) return { baseValue, prediction, values: [delta] };
    const first = background.length + instances.length + n * masks.length * background.length;
    // Eliminating the last feature through the sum constraint leaves an unconstrained fit of the other m − 1.
    const xtwx = Matrix.zeros(m - 1, m - 1);
    const xtwy = Matrix.zeros(m - 1, columns);
    masks.forEach((mask, k) => {
      const value = mean(first + k * background.length, background.length);
      const last = mask[m - 1] ? 1 : 0;
      const z = mask.slice(0, m - 1).map((b) => (b ? 1 : 0) - last);
      const w = weights[k]!;
      for (let i = 0; i < m - 1; i++) {
        if (z[i] === 0) continue;
        for (let j = 0; j < m - 1; j++) if (z[j] !== 0) xtwx.set(i, j, xtwx.get(i, j) + w * z[i]! * z[j]!);
        for (let c = 0; c < columns; c++)
          xtwy.set(i, c, xtwy.get(i, c) + w * z[i]! * (value[c]! - baseValue[c]! - last * delta[c]!));
      }
    });
    const phi = solve(xtwx, xtwy, true).to2DArray();
    const lastValues = delta.map((d, c) => d - phi.reduce((s, row) => s + row[c]!, 0));
    return { baseValue, prediction, values: [...phi, lastValues] };
  });
  return { results, evaluatedRows: rows.length };
}
