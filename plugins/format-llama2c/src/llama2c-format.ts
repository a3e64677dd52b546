import { closeSync, existsSync, fstatSync, openSync, readSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { FormatLoadContext, FormatMatch, ModelFormat, ModelSource } from '@nucleus/sdk';
import { UnsupportedModelError, type LoadedLlm } from '@nucleus/sdk/llm';
import { floatCount, loadLlama2c, readLlama2cHeader } from './load-llama2c.js';

/** Tokenizer files looked for beside a checkpoint when its config entry names none. */
export function tokenizerCandidates(checkpoint: string, vocabSize: number): string[] {
  const dir = dirname(checkpoint);
  return [join(dir, `tok${vocabSize}.bin`), join(dir, 'tokenizer.bin')];
}

// The header, and whether the file is exactly as long as the header says (the only signature the format has).
function inspect(path: string): { vocabSize: number; sizeMatches: boolean } | undefined {
  const fd = openSync(path, 'r');
  try {
    const head = Buffer.alloc(28);
    if (readSync(fd, head, 0, 28, 0) < 28) return undefined;
    const h = readLlama2cHeader(head);
    if (
      [h.dim, h.hiddenDim, h.nLayers, h.nHeads, h.nKvHeads, h.vocabSize, h.seqLen].some(
        (n) => !Number.isInteger(n) || n <= 0 || n > 1 << 24,
      )
    )
      return undefined;
    return { vocabSize: h.vocabSize, sizeMatches: fstatSync(fd).size === 28 + 4 * floatCount(h) };
  } finally {
    closeSync(fd);
  }
}

/**
 * llama2.c checkpoints (`run.c`'s format): a header of seven int32 and float32 arrays. The format has no magic, so a
 * `.bin` file is claimed only when its length is exactly what its header implies.
 */
export const llama2cFormat: ModelFormat = {
  name: 'llama2c',
  accepts:
    'a llama2.c .bin checkpoint, with its tokenizer file (models[].tokenizer, or tok<vocab>.bin / tokenizer.bin beside it)',
  detect(source: ModelSource): FormatMatch | undefined {
    if (source.type !== 'file' || !/\.bin$/i.test(source.path)) return undefined;
    const found = inspect(source.path);
    if (!found) return { confidence: 0, reason: 'is a .bin file without a llama2.c header', kind: 'llm' };
    if (!found.sizeMatches)
      return { confidence: 0, reason: 'is a .bin file whose length does not match its llama2.c header', kind: 'llm' };
    return {
      confidence: 0.9,
      reason: 'a .bin file exactly as long as its llama2.c header implies',
      kind: 'llm',
      buildsGraph: true,
    };
  },
  async loadLlm(source: ModelSource, context: FormatLoadContext): Promise<LoadedLlm> {
    const configured = context.options.tokenizer;
    let tokenizerPath = typeof configured === 'string' ? configured : undefined;
    if (tokenizerPath === undefined) {
      const candidates = tokenizerCandidates(source.path, inspect(source.path)?.vocabSize ?? 0);
      tokenizerPath = candidates.find((c) => existsSync(c));
      if (tokenizerPath === undefined) {
        throw new UnsupportedModelError(`llama2.c checkpoint ${source.source}`, [
          `no tokenizer: set the model's "tokenizer" config key to its tokenizer file (tok512.bin, tokenizer.bin from llama2.c), or put one beside the checkpoint as ${candidates.join(' or ')}`,
        ]);
      }
    }
    return loadLlama2c(source.path, {
      name: context.name,
      tokenizerPath,
      cacheDir: context.cacheDir,
      graphStyle: context.graphStyle,
      progress: context.progress,
      ...(context.maxContext !== undefined && { maxContext: context.maxContext }),
    });
  },
};
