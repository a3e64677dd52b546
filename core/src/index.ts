export { Kernel, type KernelOptions } from './kernel/kernel.js';
export type { PluginInfo } from './kernel/plugin-host.js';
export { ContractError, RouteConflictError } from './kernel/plugin-contract.js';
export { validatePluginDir, type PluginValidation } from './kernel/plugin-validation.js';
export { NucleusServer } from './server/nucleus-server.js';
export { HttpServer } from './server/http-server.js';
export { InferenceEngine, type InferenceEngineOptions } from './engine/inference-engine.js';
export { GenerationEngine, type GenerationEngineOptions } from './engine/llm/generation/generation-engine.js';
export { ModelFormats, type ResolvedSource } from './engine/model-formats.js';
export { ModelLocator, type LocateOptions } from './engine/model-locator.js';
export { Nucleus, type NucleusOptions } from './nucleus.js';
export { RequiredModelsError, type KernelModule, type MissingModel } from './kernel/kernel-module.js';
export {
  inferCallback,
  InferenceEmitter,
  type InferCallback,
  type InferenceEmitterEvents,
} from './engine/inference-callbacks.js';
