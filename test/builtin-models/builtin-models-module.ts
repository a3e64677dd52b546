// The built-in model generators, from the plugin that contributes them.
import * as BuiltinModels from '@nucleus/plugin-builtin-models';

/** The builtin-models plugin's exports. */
export const builtin = BuiltinModels;
