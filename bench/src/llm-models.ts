// LLM sources loaded the way the engine loads them: through the format plugins that claim them.
import { fileURLToPath } from 'node:url';
import { ModelFormats } from '@nucleus/core';
import { createLogger } from '@nucleus/core/internal/kernel/logger';
import { ensureTinyLlama, tinyLlamaContrib } from '@nucleus/plugin-builtin-models';
import type { LoadedLlm } from '@nucleus/sdk/llm';
import { ggufFormat } from '@nucleus/plugin-format-gguf';
import { onnxFormat } from '@nucleus/plugin-format-onnx';

/** The model cache the benches load from (the project's `.cache/models`). */
export const MODEL_CACHE = fileURLToPath(new URL('../../.cache/models', import.meta.url));
const formats = new ModelFormats([ggufFormat, onnxFormat]);
const quiet = createLogger({ level: 'silent' });

/** A GGUF file or an export folder, loaded by the format that claims it. */
export function loadLlm(
  path: string,
  options: { name?: string; graphStyle?: 'generic' | 'contrib' } = {},
): Promise<LoadedLlm> {
  const name =
    options.name ??
    path
      .split('/')
      .filter(Boolean)
      .pop()!
      .replace(/\.gguf$/i, '');
  return formats.loadLlm(path, {
    name,
    cacheDir: MODEL_CACHE,
    options: {},
    logger: quiet,
    ...(options.graphStyle && { graphStyle: options.graphStyle }),
  });
}

/** The built-in tiny-random Llama, generic or contrib. */
export async function loadTinyLlama(options: { graphStyle?: 'generic' | 'contrib' } = {}): Promise<LoadedLlm> {
  const folder = await loadLlm(await ensureTinyLlama(MODEL_CACHE), { name: 'tiny-llama' });
  return options.graphStyle === 'contrib' ? tinyLlamaContrib(folder, MODEL_CACHE) : folder;
}
