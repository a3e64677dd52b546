// The LLM pieces tests exercise directly, from where they live now: the SDK's contract, graph builder and
// tokenizers, the format plugins, and the engine's own LLM module; plus the formats as the engine resolves them.
import { join } from 'node:path';
import type { LoadedLlm } from '@nucleus/sdk/llm';
import { ModelFormats } from '@nucleus/core';
import type { BuiltinModel } from '@nucleus/sdk';
import { createLogger } from '@nucleus/core/internal/kernel/logger';
import { ggufFormat } from '@nucleus/plugin-format-gguf';
import { llama2cFormat } from '@nucleus/plugin-format-llama2c';
import { onnxFormat } from '@nucleus/plugin-format-onnx';
import {
  builtinFormat,
  builtinModels,
  ensureTinyLlama as ensureTinyLlamaIn,
  tinyLlamaContrib,
} from '@nucleus/plugin-builtin-models';
import { pointOf } from './extension-point.js';
import { REPO_ROOT } from './paths.js';

export * from '@nucleus/sdk/llm';
export * from '@nucleus/plugin-format-gguf';
export * from '@nucleus/plugin-format-llama2c';
export * from '@nucleus/plugin-format-onnx';
export * from '@nucleus/core/internal/engine/llm/index';
export * from '@nucleus/plugin-builtin-models';

/** Where tests cache generated graphs unless they pass their own folder. */
export const TEST_MODEL_CACHE = join(REPO_ROOT, '.cache', 'models');

/** The first-party formats, resolved as the engine resolves them. */
export const testFormats = new ModelFormats([ggufFormat, onnxFormat, llama2cFormat]);

/** The first-party formats and the built-in models' own: what a server with every model plugin resolves with. */
export const testFormatsWithBuiltin = new ModelFormats([ggufFormat, onnxFormat, llama2cFormat, builtinFormat]);

/** The `builtinModel` point as the builtin-models plugin fills it. */
export const testBuiltins = pointOf<BuiltinModel>(
  'builtinModel',
  'builtin-models',
  builtinModels,
  (m) => `models/${m.kind}:${m.name}`,
);

const silent = createLogger({ level: 'silent' });

/** The built-in tiny Llama's folder, written into the test cache (or `cacheDir`) on first use. */
export function ensureTinyLlama(cacheDir: string = TEST_MODEL_CACHE): Promise<string> {
  return ensureTinyLlamaIn(cacheDir);
}

/** Options of {@link loadLlm}. */
export interface LoadLlmOptions {
  name?: string;
  maxContext?: number;
  cacheDir?: string;
  graphStyle?: 'generic' | 'contrib';
  /** A llama2.c checkpoint's tokenizer file. */
  tokenizerPath?: string;
}

/** Loads any LLM source through the format that claims it. */
export function loadLlm(path: string, options: LoadLlmOptions = {}): Promise<LoadedLlm> {
  return testFormats.loadLlm(path, {
    name:
      options.name ??
      path
        .split('/')
        .filter(Boolean)
        .pop()!
        .replace(/\.(gguf|bin)$/i, ''),
    cacheDir: options.cacheDir ?? TEST_MODEL_CACHE,
    ...(options.graphStyle !== undefined && { graphStyle: options.graphStyle }),
    ...(options.maxContext !== undefined && { maxContext: options.maxContext }),
    options: options.tokenizerPath !== undefined ? { tokenizer: options.tokenizerPath } : {},
    logger: silent,
  });
}

/** The built-in tiny-random Llama (generated into the cache on first use), generic or contrib. */
export async function loadTinyLlama(
  options: Pick<LoadLlmOptions, 'cacheDir' | 'maxContext' | 'graphStyle'> = {},
): Promise<LoadedLlm> {
  const cacheDir = options.cacheDir ?? TEST_MODEL_CACHE;
  const folder = await loadLlm(await ensureTinyLlamaIn(cacheDir), {
    name: 'tiny-llama',
    cacheDir,
    ...(options.maxContext !== undefined && { maxContext: options.maxContext }),
  });
  return options.graphStyle === 'contrib' ? tinyLlamaContrib(folder, cacheDir) : folder;
}
