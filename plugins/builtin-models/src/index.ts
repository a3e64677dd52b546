import { definePlugin, ExtensionPoints } from '@nucleus/sdk';
import { builtinFormat } from './builtin-format.js';
import { builtinModels } from './builtin-models.js';

export { builtinFormat } from './builtin-format.js';
export { builtinModels, STORIES_GGUF, STORIES_MODEL, STORY_CHAT_TEMPLATE } from './builtin-models.js';
export * from './generated-models.js';
export * from './tiny-llama.js';

/** Contributes the models served when none is configured, and the format of the tiny Llama's folder. */
export default definePlugin({
  activate(ctx) {
    for (const model of builtinModels)
      ctx.contribute(ExtensionPoints.builtinModel, model, { name: `models/${model.kind}:${model.name}` });
    ctx.contribute(ExtensionPoints.modelFormat, builtinFormat);
  },
});
