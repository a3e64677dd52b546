// The tensor-model engine: model sources, worker threads, dynamic batching.
export { BatchAssembler, type BatchLayout, type BatchStats } from './batching/batch-assembler.js';
export {
  DynamicBatcher,
  cancelledError,
  type BatchedResult,
  type BatchSettings,
  type BatcherStats,
  type DynamicBatcherOptions,
  type SubmitOptions,
} from './batching/dynamic-batcher.js';
export { DEFAULT_CPU_BACKEND, withDefaultCpu } from './default-cpu-backend.js';
export { InferenceEngine, type InferenceEngineOptions } from './inference-engine.js';
export { LoadedModel, type LoadedBackend, type LoadedModelOptions } from './loaded-model.js';
export {
  MODEL_MANIFEST_SCHEMA,
  readModelManifest,
  verifyChecksums,
  type ManifestBatching,
  type ManifestTensor,
  type ModelManifest,
} from './model-manifest.js';
export {
  compareVersions,
  ModelRepository,
  type ConfiguredModel,
  type ModelOptions,
  type ModelRepositoryOptions,
  type ModelSource,
  type SourceProblem,
} from './model-repository.js';
export { formatShape, ModelSignature, type Verdict } from './model-signature.js';
export {
  SessionWorkerClient,
  type RunResult,
  type SessionReady,
  type SessionWorkerClientOptions,
} from './workers/session-worker-client.js';
export { WorkerPool } from './workers/worker-pool.js';
export type { SessionWorkerSpec, WireTensor, WireValueMetadata } from './workers/worker-messages.js';
