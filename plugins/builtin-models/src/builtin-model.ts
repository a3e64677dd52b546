import type { Dim, DType } from '@nucleus/sdk/onnx';

/** One input or output of a built-in model, as model.json describes it. */
export interface TensorSpec {
  name: string;
  dtype: DType;
  /** Symbolic dims are names (`'batch'`, `'sequence'`). */
  shape: Dim[];
  description: string;
}

/** One numeric feature of a tabular model and the statistics its raw values are standardised with. */
export interface FeatureSpec {
  name: string;
  mean: number;
  std: number;
}

/** How raw tabular features become the model's input: `(value - mean) / std`, in `features` order. */
export interface TabularPreprocessing {
  type: 'standardize';
  /** Which model input the standardised vector feeds. */
  input: string;
  features: FeatureSpec[];
}

/** What a generator says about its model; `ensureBuiltinModels` adds `framework` and `sha256` for model.json. */
export interface BuiltinModelMetadata {
  name: string;
  version: number;
  description: string;
  /** What the model does: `classification`, `embedding`, `regression` … */
  task: string;
  inputs: TensorSpec[];
  outputs: TensorSpec[];
  /** Class names by class index, for classifiers. */
  labels?: string[];
  preprocessing?: TabularPreprocessing;
  /** Architecture facts (hidden size, layers …) a caller may want. */
  config?: Record<string, number | string>;
}

/** A generated model: its ONNX bytes and its description. */
export interface GeneratedModel {
  bytes: Uint8Array;
  metadata: BuiltinModelMetadata;
}

/** A named generator of a built-in model. */
export interface BuiltinModelGenerator {
  name: string;
  /** Bumped whenever the generator's output changes, so cached copies are rebuilt. */
  revision: number;
  build(): GeneratedModel;
}
