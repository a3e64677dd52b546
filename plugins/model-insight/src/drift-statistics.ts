/**
 * The two-distribution statistics drift is measured with: the population stability index over bins, and the
 * Kolmogorov–Smirnov statistic (the largest gap between two distribution functions).
 */

/** Proportions below this count as this, so an empty bin gives a large but finite PSI (the usual convention). */
export const PSI_FLOOR = 1e-4;

/** Σ (actual − expected) · ln(actual / expected) over bins given as proportions (each list sums to 1). */
export function psi(expected: readonly number[], actual: readonly number[]): number {
  let total = 0;
  for (let i = 0; i < expected.length; i++) {
    const e = Math.max(expected[i]!, PSI_FLOOR);
    const a = Math.max(actual[i]!, PSI_FLOOR);
    total += (a - e) * Math.log(a / e);
  }
  return total;
}

/**
 * The share of `values` in each bin that `edges` (ascending inner edges) cut the line into: bin i holds
 * edges[i−1] < v ≤ edges[i], the first bin everything up to edges[0], the last everything above the last edge.
 */
export function binShares(values: readonly number[], edges: readonly number[]): number[] {
  const counts = new Array<number>(edges.length + 1).fill(0);
  for (const v of values) counts[binOf(v, edges)]!++;
  return values.length ? counts.map((c) => c / values.length) : counts;
}

function binOf(v: number, edges: readonly number[]): number {
  let lo = 0;
  let hi = edges.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (v <= edges[mid]!) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

/** The inner edges of `bins` equal-count bins of an ascending sample, with repeated edges dropped (ties). */
export function quantileEdges(sorted: readonly number[], bins = 10): number[] {
  const edges: number[] = [];
  for (let i = 1; i < bins; i++) {
    const v = sorted[Math.min(sorted.length - 1, Math.ceil((i / bins) * sorted.length) - 1)]!;
    if (edges.length === 0 || v > edges[edges.length - 1]!) edges.push(v);
  }
  return edges;
}

/** Two-sample KS statistic of two ascending samples. */
export function ksTwoSample(a: readonly number[], b: readonly number[]): number {
  if (a.length === 0 || b.length === 0) return 0;
  let i = 0;
  let j = 0;
  let d = 0;
  while (i < a.length && j < b.length) {
    const x = Math.min(a[i]!, b[j]!);
    while (i < a.length && a[i]! <= x) i++;
    while (j < b.length && b[j]! <= x) j++;
    d = Math.max(d, Math.abs(i / a.length - j / b.length));
  }
  return d;
}

/** One-sample KS statistic of an ascending sample against a distribution function. */
export function ksOneSample(sorted: readonly number[], cdf: (x: number) => number): number {
  const n = sorted.length;
  let d = 0;
  for (let i = 0; i < n; i++) {
    const f = cdf(sorted[i]!);
    d = Math.max(d, (i + 1) / n - f, f - i / n);
  }
  return d;
}

/** The standard normal distribution function (Abramowitz–Stegun 7.1.26, absolute error below 1.5e-7). */
export function normalCdf(z: number): number {
  const x = Math.abs(z) / Math.SQRT2;
  const t = 1 / (1 + 0.3275911 * x);
  const erf =
    1 -
    ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * Math.exp(-x * x);
  return z >= 0 ? (1 + erf) / 2 : (1 - erf) / 2;
}

/** The inner decile edges of the standard normal distribution. */
export const NORMAL_DECILES = [
  -1.2815515655446004, -0.8416212335729143, -0.5244005127080407, -0.2533471031357997, 0, 0.2533471031357997,
  0.5244005127080407, 0.8416212335729143, 1.2815515655446004,
];
