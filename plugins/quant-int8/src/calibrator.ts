import type { CalibratorKind } from './quantize-options.js';

/** The float range of a tensor that maps onto its 8-bit grid. */
export interface TensorRange {
  min: number;
  max: number;
}

/** Bins of the |x| histogram the percentile and entropy calibrators read (TensorRT's and ORT's count). */
export const HISTOGRAM_BINS = 2048;
// Levels of the 8-bit grid on one side of zero, the KL search's target resolution.
const QUANT_LEVELS = 128;

/**
 * What one tensor's values looked like over the calibration set: its extremes (first pass) and, for the percentile
 * and entropy calibrators, a histogram of |x| over [0, max |x|] (second pass, once the extremes are known).
 */
export class TensorStats {
  min = Infinity;
  max = -Infinity;
  histogram?: Float64Array;

  /** First pass: extremes. */
  observeRange(values: ArrayLike<number>): void {
    let { min, max } = this;
    for (let i = 0; i < values.length; i++) {
      const v = values[i]!;
      if (v < min) min = v;
      if (v > max) max = v;
    }
    this.min = min;
    this.max = max;
  }

  /** Second pass: |x| into {@link HISTOGRAM_BINS} bins up to the largest magnitude seen in the first. */
  observeHistogram(values: ArrayLike<number>): void {
    const amax = this.amax;
    const hist = (this.histogram ??= new Float64Array(HISTOGRAM_BINS));
    if (amax === 0) {
      hist[0]! += values.length;
      return;
    }
    const perBin = HISTOGRAM_BINS / amax;
    for (let i = 0; i < values.length; i++)
      hist[Math.min(HISTOGRAM_BINS - 1, Math.floor(Math.abs(values[i]!) * perBin))]! += 1;
  }

  get amax(): number {
    return Math.max(Math.abs(this.min), Math.abs(this.max), 0);
  }

  /** The range the calibrator picks; it always holds 0, so zero is exact on the grid. */
  range(kind: CalibratorKind, percentile = 99.99): TensorRange {
    const lo = Math.min(0, Number.isFinite(this.min) ? this.min : 0);
    const hi = Math.max(0, Number.isFinite(this.max) ? this.max : 0);
    if (kind === 'minmax' || !this.histogram) return { min: lo, max: hi };
    const threshold =
      kind === 'percentile'
        ? percentileThreshold(this.histogram, this.amax, percentile)
        : entropyThreshold(this.histogram, this.amax);
    return { min: Math.max(lo, -threshold), max: Math.min(hi, threshold) };
  }
}

/** The |x| below which `percentile` % of the values fall (the upper edge of the bin that reaches it). */
export function percentileThreshold(histogram: Float64Array, amax: number, percentile: number): number {
  const total = histogram.reduce((a, b) => a + b, 0);
  const wanted = (total * percentile) / 100;
  let seen = 0;
  for (let i = 0; i < histogram.length; i++) {
    seen += histogram[i]!;
    if (seen >= wanted) return ((i + 1) / histogram.length) * amax;
  }
  return amax;
}

/**
 * The clipping threshold that loses least information, TensorRT's entropy calibration: for each candidate edge i, the
 * reference distribution is the histogram cut at i with everything beyond folded into its last bin; the candidate is
 * that histogram merged into 128 levels and spread back over the non-empty bins; the edge with the smallest KL
 * divergence between the two wins.
 */
export function entropyThreshold(histogram: Float64Array, amax: number): number {
  const bins = histogram.length;
  let best = bins;
  let bestDivergence = Infinity;
  let tail = 0;
  for (let i = bins - 1; i >= QUANT_LEVELS - 1; i--) tail += histogram[i]!;
  for (let i = QUANT_LEVELS; i <= bins; i++) {
    // tail = Σ histogram[i-1 …]: what the reference folds into its last bin.
    const p = histogram.slice(0, i);
    p[i - 1] = tail;
    tail -= histogram[i - 1]!;
    const q = new Float64Array(i);
    const step = i / QUANT_LEVELS;
    for (let level = 0; level < QUANT_LEVELS; level++) {
      const start = Math.floor(level * step);
      const end = level === QUANT_LEVELS - 1 ? i : Math.floor((level + 1) * step);
      let sum = 0;
      let nonEmpty = 0;
      for (let j = start; j < end; j++) {
        sum += histogram[j]!;
        if (histogram[j]! > 0) nonEmpty++;
      }
      if (nonEmpty === 0) continue;
      for (let j = start; j < end; j++) if (histogram[j]! > 0) q[j] = sum / nonEmpty;
    }
    const divergence = klDivergence(p, q);
    if (divergence < bestDivergence) {
      bestDivergence = divergence;
      best = i;
    }
  }
  return (best / bins) * amax;
}

// KL(p ‖ q) of two unnormalised histograms; a bin q leaves empty where p is not costs a large constant, not ∞.
function klDivergence(p: Float64Array, q: Float64Array): number {
  const sp = p.reduce((a, b) => a + b, 0);
  const sq = q.reduce((a, b) => a + b, 0);
  if (sp === 0 || sq === 0) return Infinity;
  let d = 0;
  for (let j = 0; j < p.length; j++) {
    if (p[j]! === 0) continue;
    const pj = p[j]! / sp;
    const qj = q[j]! / sq;
    d += qj > 0 ? pj * Math.log(pj / qj) : pj * 20;
  }
  return d;
}
