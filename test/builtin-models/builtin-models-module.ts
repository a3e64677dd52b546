// The built-in model generators live in core, whose package exports only its entry point; load the compiled
// module by path (test/dist/builtin-models → core/dist) and type it from the source.
import type * as BuiltinModels from '../../core/src/engine/builtin-models/index.js';

const url = new URL('../../../core/dist/engine/builtin-models/index.js', import.meta.url);

/** core/src/engine/builtin-models, compiled. */
export const builtin = (await import(url.href)) as typeof BuiltinModels;
