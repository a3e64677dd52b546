import type { Tensor } from './inference.js';

/** How attributions are computed: Kernel SHAP (additive, with a base value) or permutation importance. */
export type ExplanationMethod = 'kernel_shap' | 'permutation';

/** One request to explain a tensor model's answer for the rows of its input. */
export interface ExplainRequest {
  model: string;
  version?: string;
  /** The model's inputs, as an inference request would give them. */
  inputs: Record<string, Tensor>;
  /** Default `kernel_shap`. */
  method?: ExplanationMethod;
  /** The output whose values are explained; by default the model's first floating-point output. */
  output?: string;
  signal?: AbortSignal;
  requestId?: string;
}

/** What a feature did to one row's output: one value per output column (class), in the output's column order. */
export interface FeatureAttribution {
  feature: string;
  /** The feature's value in this row. */
  value: number;
  attributions: number[];
}

/** One row explained. */
export interface RowExplanation {
  /** Kernel SHAP: the output expected over the background; the attributions sum to `prediction − baseValue`. */
  baseValue?: number[];
  prediction: number[];
  features: FeatureAttribution[];
}

/** An explanation of a model's output: per-feature attributions per row (SHAP) or over the rows (permutation). */
export interface Explanation {
  model: string;
  version: string;
  method: ExplanationMethod;
  output: string;
  /** The output's column names (class labels from model.json where it has them, else indices). */
  columns: string[];
  /** Kernel SHAP: one entry per input row. */
  rows?: RowExplanation[];
  /** Permutation: each feature's mean absolute change of the output when it is shuffled, most important first. */
  importance?: Array<{ feature: string; importance: number; std: number }>;
  /** Where the background (SHAP) or reference rows (permutation) came from. */
  reference: 'training' | 'recorded' | 'uploaded' | 'request';
  /** Session runs the explanation cost, and the perturbed rows they held. */
  runs: number;
  evaluatedRows: number;
}

/** Explains tensor models' answers (the `explainer` extension point); the API plugins reach it for `explain: true`. */
export interface Explainer {
  readonly name: string;
  explain(request: ExplainRequest): Promise<Explanation>;
}
