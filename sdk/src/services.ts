/** Tokens under which the kernel registers its services in every plugin's container (`ctx.container.resolve(Services.events)`). */
export const Services = {
  /** The {@link EventBus}. */
  events: 'nucleus.events',
  /** The kernel's root {@link Logger}. */
  logger: 'nucleus.logger',
  /** The plugin's {@link PluginContext} (only in a plugin's own container). */
  context: 'nucleus.pluginContext',
  /** The read-only {@link PluginDirectory}: every plugin and its state. */
  plugins: 'nucleus.plugins',
  /** The tensor-model {@link InferenceService}: list, run, load and unload models. */
  inference: 'nucleus.inference',
  /** The text-generation {@link GenerationService}: list models, generate, embed. */
  generation: 'nucleus.generation',
  /** The {@link ModelRegistry}: load, swap and unload tensor models and LLMs at run time. */
  models: 'nucleus.models',
} as const;
