import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { FormatLoadContext, FormatMatch, ModelFormat, ModelSource } from '@nucleus/sdk';
import { builtDecoderConfig, type LoadedLlm } from '@nucleus/sdk/llm';
import {
  TINY_LLAMA_ARCH,
  TINY_LLAMA_CHAT_TEMPLATE,
  TINY_LLAMA_MARKER,
  tinyLlamaConfigJson,
  tinyLlamaContrib,
} from './tiny-llama.js';

/**
 * The tiny Llama's own folder (it carries a marker file): this plugin built its weights, so it builds the graph style
 * the backend runs best (contrib on the CPU), which a plain export-folder load could not.
 */
export const builtinFormat: ModelFormat = {
  name: 'builtin',
  accepts: "the built-in tiny Llama's folder in the model cache",
  detect(source: ModelSource): FormatMatch | undefined {
    if (source.type !== 'directory' || !existsSync(join(source.path, TINY_LLAMA_MARKER))) return undefined;
    return {
      confidence: 1,
      reason: 'the built-in tiny Llama (its marker file is there)',
      kind: 'llm',
      buildsGraph: true,
    };
  },
  async loadLlm(source: ModelSource, context: FormatLoadContext): Promise<LoadedLlm> {
    const read = async (file: string): Promise<Record<string, unknown>> =>
      JSON.parse(await readFile(join(source.path, file), 'utf8')) as Record<string, unknown>;
    const ids = tinyLlamaConfigJson() as { bos_token_id: number; eos_token_id: number[]; pad_token_id: number };
    const tokens = { bosTokenId: ids.bos_token_id, eosTokenIds: ids.eos_token_id };
    const generic: LoadedLlm = {
      name: context.name,
      source: 'builtin',
      config: {
        ...builtDecoderConfig(TINY_LLAMA_ARCH, 'generic', {
          ...tokens,
          ...(context.maxContext !== undefined && { maxContext: context.maxContext }),
        }),
        padTokenId: ids.pad_token_id,
      },
      onnxPath: join(source.path, 'model.onnx'),
      tokenizer: {
        kind: 'hf',
        tokenizerJson: await read('tokenizer.json'),
        tokenizerConfig: await read('tokenizer_config.json'),
        ...tokens,
      },
      chatTemplate: TINY_LLAMA_CHAT_TEMPLATE,
    };
    return context.graphStyle === 'contrib' ? tinyLlamaContrib(generic, context.cacheDir) : generic;
  },
};
