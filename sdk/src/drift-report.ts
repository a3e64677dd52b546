/** Drift and data-quality figures of one feature over a model's live window. */
export interface FeatureDrift {
  name: string;
  /** Population stability index of the window against the reference's decile bins. */
  psi: number;
  /** Kolmogorov–Smirnov statistic: the largest gap between the window's and the reference's distribution functions. */
  ks: number;
  /** Values in the window that were null. */
  missing: number;
  /** Values in the window that were not finite numbers. */
  nan: number;
  /** Values outside the reference's [min, max], where the reference knows them. */
  outOfRange: number;
}

/** A model's live inputs and predictions compared with its reference profile (the `drift.report` event). */
export interface DriftReport {
  model: string;
  /** Rows in the live window the figures rest on. */
  samples: number;
  /** Where the reference came from: model.json training statistics, the first requests seen, or an upload. */
  reference: 'training' | 'recorded' | 'uploaded';
  features: FeatureDrift[];
  /** The largest PSI and KS over the features. */
  maxPsi: number;
  maxKs: number;
  /** PSI of the predicted classes (or values) against the reference's, once a prediction reference is known. */
  predictionPsi?: number;
  /** ISO time of the evaluation. */
  at: string;
}
