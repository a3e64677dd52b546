// Tiny deterministic ONNX models the project generates for itself (no model hub is reachable).
export { bertTiny, buildBertTiny, BERT_TINY_CONFIG } from './bert-tiny.js';
export type {
  GeneratedModel,
  BuiltinModelGenerator,
  BuiltinModelMetadata,
  FeatureSpec,
  TabularPreprocessing,
  TensorSpec,
} from './builtin-model.js';
export {
  BUILTIN_MODELS,
  ensureBuiltinModels,
  type BuiltinModelManifest,
  type EnsuredModel,
} from './ensure-builtin-models.js';
export { buildMlpClassifier, mlpClassifier } from './mlp-classifier.js';
export { buildMultiIoModel, multiIoModel } from './multi-io-model.js';
export { buildResnetTiny, resnetTiny } from './resnet-tiny.js';
export { buildTabularClassifier, tabularClassifier, TABULAR_FEATURES } from './tabular-classifier.js';
