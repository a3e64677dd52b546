import { SeededRandom } from '@nucleus/sdk';
import type { Evaluate } from './kernel-shap.js';

/** Each feature's importance: the mean over repeats of how much the outputs move when it is shuffled, and its spread. */
export interface FeatureImportance {
  importance: number[];
  std: number[];
}

/**
 * Permutation importance without labels: for each feature, shuffle its column across the reference rows (`repeats`
 * times, seeded) and measure the mean absolute change of the output, summed over its columns. A feature the model
 * ignores scores 0. All shuffled copies go to `evaluate` in one call.
 */
export async function permutationImportance(
  reference: readonly number[][],
  evaluate: Evaluate,
  repeats: number,
  seed: number,
): Promise<FeatureImportance & { evaluatedRows: number }> {
  const n = reference.length;
  const m = reference[0]?.length ?? 0;
  const rng = new SeededRandom(seed);
  const rows: number[][] = reference.map((r) => [...r]);
  for (let j = 0; j < m; j++) {
    for (let r = 0; r < repeats; r++) {
      const order = Array.from({ length: n }, (_, i) => i);
      for (let i = n - 1; i > 0; i--) {
        const k = rng.int(i + 1);
        [order[i], order[k]] = [order[k]!, order[i]!];
      }
      for (let i = 0; i < n; i++) {
        const row = [...reference[i]!];
        row[j] = reference[order[i]!]![j]!;
        rows.push(row);
      }
    }
  }
  const out = await evaluate(rows);
  const importance: number[] = [];
  const std: number[] = [];
  for (let j = 0; j < m; j++) {
    const scores: number[] = [];
    for (let r = 0; r < repeats; r++) {
      const first = n + (j * repeats + r) * n;
      let total = 0;
      for (let i = 0; i < n; i++) {
        const base = out[i]!;
        const moved = out[first + i]!;
        for (let c = 0; c < base.length; c++) total += Math.abs(moved[c]! - base[c]!);
      }
      scores.push(total / n);
    }
    const mean = scores.reduce((s, v) => s + v, 0) / repeats;
    importance.push(mean);
    std.push(Math.sqrt(scores.reduce((s, v) => s + (v - mean) ** 2, 0) / repeats));
  }
  return { importance, std, evaluatedRows: rows.length };
}
