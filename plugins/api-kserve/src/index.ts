import {
  definePlugin,
  ExtensionPoints,
  InferenceHooks,
  NucleusError,
  optionalService,
  ServiceRefs,
  type PluginContext,
  type GenerationService,
  type InferenceService,
  type ModelRegistry,
} from '@nucleus/sdk';
import { generateRoutes } from './generate-routes.js';
import { kserveRoutes, noEngine } from './kserve-routes.js';
import { monitorRoutes } from './monitor-routes.js';
import { nativeRoutes } from './native-routes.js';
import { wsInfer } from './ws-infer.js';

export {
  attachBinaryInputs,
  BINARY_EXTENSION,
  binaryResponse,
  binaryTensorData,
  wantsBinary,
} from './binary-tensors.js';
export {
  generateRoutes,
  generationModel,
  llmMetadata,
  LLM_PLATFORM,
  parseGenerateBody,
  type GenerateBody,
} from './generate-routes.js';
export { decodeInputs, kserveRoutes, PLATFORM, type ServerIdentity } from './kserve-routes.js';
export { kserveDatatype, SUPPORTED_DATATYPES, tensorDataType, type KServeDatatype } from './kserve-datatypes.js';
export { monitorRoutes, probeGpuBackends, type GpuBackendReport } from './monitor-routes.js';
export { inferGeneration, isGenerationRequest, type InferGenerationAnswer } from './infer-generation.js';
export { decodeNativeInputs, nativeRoutes } from './native-routes.js';
export { KSERVE_INFER_SCHEMA, NATIVE_INFER_SCHEMA } from './request-schemas.js';
export { flatten, fromTensorData, nest, shapeOfNested, tensorValues, toTensorData } from './tensor-json.js';

/** The api-kserve plugin's config section (`plugin.api-kserve`). */
export interface ApiKServeConfig {
  serverName: string;
}

/** KServe v2 REST, the native tensor endpoints and the GPU and memory monitors, served by the kernel's inference engine. */
export default definePlugin({
  deps: {
    inference: optionalService(ServiceRefs.inference),
    generationService: optionalService(ServiceRefs.generation),
    registry: optionalService(ServiceRefs.models),
    readiness: optionalService(ServiceRefs.readiness),
  },
  activate(ctx: PluginContext<ApiKServeConfig>, { inference, generationService, registry, readiness }) {
    const service = (): InferenceService => {
      if (!inference) throw noEngine();
      return inference;
    };
    const generation = (): GenerationService | undefined => generationService;
    const models = (): ModelRegistry | undefined => registry;
    const identity = { name: ctx.config.serverName, version: ctx.version };
    const hooks = new InferenceHooks(ctx);
    const explainers = ctx.extensionPoint(ExtensionPoints.explainer);
    // Named by surface, as the manifest's `provides` declares them (`routes:kserve-v2` …).
    const surfaces = {
      'kserve-v2': [
        ...kserveRoutes(service, identity, hooks, generation, models),
        ...generateRoutes(generation, hooks),
      ],
      'native-inference': nativeRoutes(
        service,
        hooks,
        generation,
        readiness,
        () => (ctx.configValue('server.defaultModel') as string | undefined) || undefined,
        (request) => {
          const explainer = explainers.first();
          if (!explainer)
            throw new NucleusError(
              501,
              'explainer_unavailable',
              'explain: true needs an explainer plugin (model-insight)',
            );
          return explainers.use(explainer, (e) => e.explain(request));
        },
      ),
      monitor: monitorRoutes(service, ctx.extensionPoint(ExtensionPoints.backend), generation),
    };
    for (const [surface, routes] of Object.entries(surfaces))
      for (const route of routes)
        ctx.contribute(ExtensionPoints.routes, route, { name: `${surface}/${route.method} ${route.path}` });
    ctx.contribute(ExtensionPoints.wsHandlers, wsInfer(service, hooks), { name: 'ws-infer' });
  },
});
