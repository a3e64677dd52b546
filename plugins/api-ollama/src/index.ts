import {
  definePlugin,
  ExtensionPoints,
  InferenceHooks,
  optionalService,
  ServiceRefs,
  unavailable,
  type GenerationService,
  type ModelRegistry,
} from '@nucleus/sdk';
import { generateRoutes } from './generate-routes.js';
import { modelRoutes } from './model-routes.js';
import { ollamaErrors } from './ollama-errors.js';
import { pullRoute } from './pull-route.js';

export { addressOf, ollamaName } from './model-names.js';
export { OLLAMA_API_VERSION } from './model-routes.js';
export { pullTarget } from './pull-route.js';

/**
 * The Ollama API under `/api/`: generation and chat streamed as NDJSON, embeddings, the model list, `show`, `ps`,
 * `version` and `pull` (from the Hugging Face Hub), with Ollama's `{"error": "..."}` error bodies. The routes reach
 * the engine only through the services they declare (a server without a generation engine answers 503).
 */
export default definePlugin({
  deps: { generation: optionalService(ServiceRefs.generation), models: optionalService(ServiceRefs.models) },
  activate(ctx, { generation, models }) {
    const engine = (): GenerationService => {
      if (!generation) throw unavailable('generation_unavailable', 'this server runs no text-generation engine');
      return generation;
    };
    const registry = (): ModelRegistry => {
      if (!models) throw unavailable('models_unavailable', 'this server cannot load models at run time');
      return models;
    };
    const hooks = new InferenceHooks(ctx);
    const routes = [
      ...generateRoutes({ generation: engine, hooks }),
      ...modelRoutes(engine, hooks),
      pullRoute({
        models: registry,
        sources: ctx.extensionPoint(ExtensionPoints.modelSource),
        generation: engine,
        logger: ctx.logger,
      }),
    ];
    for (const route of routes)
      ctx.contribute(ExtensionPoints.routes, route, { name: `ollama/${route.method} ${route.path}` });
    ctx.contribute(ExtensionPoints.errorBody, ollamaErrors, { name: 'ollama/errors' });
  },
});
