import {
  definePlugin,
  ExtensionPoints,
  NucleusError,
  optionalService,
  ServiceRefs,
  type ModelRegistry,
  type PluginContext,
} from '@nucleus/sdk';
import { ConfigModels, type ConfiguredEntry } from './config-models.js';
import { ModelLifecycle, type LifecyclePolicy } from './model-lifecycle.js';
import { modelRoutes } from './model-routes.js';

export { ConfigModels, diffModels, type ConfiguredEntry, type ModelsChange } from './config-models.js';
export { ModelLifecycle, type LifecyclePolicy } from './model-lifecycle.js';
export { modelRoutes } from './model-routes.js';
export { checkBody, LOAD_SCHEMA, SWAP_SCHEMA, validators } from './request-schemas.js';

/** Load, swap and unload models at run time through `/admin/models`, over the kernel's model registry. */
export default definePlugin({
  deps: { models: optionalService(ServiceRefs.models) },
  activate(ctx: PluginContext<LifecyclePolicy>, { models }) {
    const registry = (): ModelRegistry => {
      if (!models) throw new NucleusError(503, 'engine_unavailable', 'no model registry is running in this server');
      return models;
    };
    const lifecycle = new ModelLifecycle(registry, ctx.config, ctx.events, ctx.logger);
    for (const route of modelRoutes(lifecycle))
      ctx.contribute(ExtensionPoints.routes, route, { name: `admin-models/${route.method} ${route.path}` });
    // `models` changed at run time (PATCH /admin/config): load, swap and unload to match, with this plugin's policy.
    const configModels = new ConfigModels(lifecycle, ctx.logger);
    const off = ctx.events.on('config.changed', ({ path, value, previous }) => {
      if (path !== 'models') return;
      void configModels.apply((previous ?? []) as ConfiguredEntry[], (value ?? []) as ConfiguredEntry[]);
    });
    ctx.onDispose(off);
  },
});
