import { closeSync, openSync, readSync } from 'node:fs';
import type { FormatLoadContext, FormatMatch, ModelFormat, ModelSource } from '@nucleus/sdk';
import type { LoadedLlm } from '@nucleus/sdk/llm';
import { loadGguf } from './load-gguf.js';

const MAGIC = 'GGUF';

/** The first bytes of a file, fewer when it is shorter. */
export function readHead(path: string, bytes: number): Buffer {
  const fd = openSync(path, 'r');
  try {
    const head = Buffer.alloc(bytes);
    return head.subarray(0, readSync(fd, head, 0, bytes, 0));
  } finally {
    closeSync(fd);
  }
}

/** GGUF files (llama.cpp's format): a Llama graph is built from the weights, the tokenizer read from the metadata. */
export const ggufFormat: ModelFormat = {
  name: 'gguf',
  accepts: 'a .gguf file holding a Llama-architecture model',
  detect(source: ModelSource): FormatMatch | undefined {
    if (source.type !== 'file') return undefined;
    const named = /\.gguf$/i.test(source.path);
    if (readHead(source.path, 4).toString('latin1') === MAGIC) {
      return { confidence: 1, reason: 'starts with the GGUF magic', kind: 'llm', buildsGraph: true };
    }
    return named
      ? {
          confidence: 0,
          reason: 'is named .gguf but does not start with the GGUF magic bytes (a truncated or renamed file?)',
          kind: 'llm',
        }
      : undefined;
  },
  loadLlm(source: ModelSource, context: FormatLoadContext): Promise<LoadedLlm> {
    return loadGguf(source.path, {
      name: context.name,
      cacheDir: context.cacheDir,
      graphStyle: context.graphStyle,
      progress: context.progress,
      ...(context.maxContext !== undefined && { maxContext: context.maxContext }),
      ...(context.layers !== undefined && { layers: context.layers }),
      ...(context.options.quantizedMatmul === 'int8' && { quantizedMatmul: 'int8' }),
    });
  },
};
