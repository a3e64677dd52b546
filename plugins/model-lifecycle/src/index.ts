import { definePlugin, ExtensionPoints, NucleusError, Services, type ModelRegistry } from '@nucleus/sdk';
import { ModelLifecycle, type LifecyclePolicy } from './model-lifecycle.js';
import { modelRoutes } from './model-routes.js';

export { ModelLifecycle, type LifecyclePolicy } from './model-lifecycle.js';
export { modelRoutes } from './model-routes.js';
export { LOAD_SCHEMA, SWAP_SCHEMA } from './request-schemas.js';

/** Load, swap and unload models at run time through `/admin/models`, over the kernel's model registry. */
export default definePlugin<LifecyclePolicy>({
  activate(ctx) {
    const registry = (): ModelRegistry => {
      if (!ctx.container.isRegistered(Services.models, true))
        throw new NucleusError(503, 'engine_unavailable', 'no model registry is running in this server');
      return ctx.container.resolve<ModelRegistry>(Services.models);
    };
    const lifecycle = new ModelLifecycle(registry, ctx.config, ctx.events, ctx.logger);
    for (const route of modelRoutes(lifecycle))
      ctx.contribute(ExtensionPoints.routes, route, { name: `admin-models/${route.method} ${route.path}` });
  },
});
