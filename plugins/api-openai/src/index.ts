import { definePlugin, ExtensionPoints, InferenceHooks, optionalService, ServiceRefs, unavailable } from '@nucleus/sdk';
import { nativeRoutes } from './native-routes.js';
import { openAiRoutes, type RouteDeps } from './openai-routes.js';
import { wsGeneration } from './ws-generation.js';

export {
  type BodyMessage,
  chatMessagesOf,
  openAiFinishReason,
  refuseUnsupported,
  responseId,
  type SamplingBody,
  samplingOf,
  usageBody,
} from './request-mapping.js';
export {
  CHAT_COMPLETION_SCHEMA,
  CHAT_ROLES,
  CHAT_SCHEMA,
  COMPLETION_SCHEMA,
  EMBEDDING_SCHEMA,
  GENERATE_SCHEMA,
  validator,
} from './schemas.js';

/** Most prompts one `/v1/completions` request may carry as a list. */
const MAX_PROMPTS_PER_REQUEST = 16;

/**
 * The OpenAI-compatible `/v1` API and the native `/generate`, `/chat` and `/embeddings` endpoints. They reach the
 * engine only through the generation service they declare (a server without one answers 503).
 */
export default definePlugin({
  deps: { generation: optionalService(ServiceRefs.generation) },
  activate(ctx, { generation }) {
    const engine = () => {
      if (!generation) throw unavailable('generation_unavailable', 'this server runs no text-generation engine');
      return generation;
    };
    const deps: RouteDeps = {
      generation: engine,
      events: ctx.events,
      maxPromptsPerRequest: MAX_PROMPTS_PER_REQUEST,
      hooks: new InferenceHooks(ctx),
    };
    const defaultModel = () => (ctx.configValue('server.defaultModel') as string | undefined) || undefined;
    // Named by surface, as the manifest's `provides` declares them (`routes:openai-v1`, `routes:native-generation`).
    const surfaces = { 'openai-v1': openAiRoutes(deps), 'native-generation': nativeRoutes(deps, defaultModel) };
    for (const [surface, routes] of Object.entries(surfaces))
      for (const route of routes)
        ctx.contribute(ExtensionPoints.routes, route, { name: `${surface}/${route.method} ${route.path}` });
    ctx.contribute(ExtensionPoints.wsHandlers, wsGeneration(engine, deps.hooks), { name: 'ws-generation' });
  },
});
