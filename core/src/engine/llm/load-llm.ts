import { stat } from 'node:fs/promises';
import { loadGguf } from './formats/gguf/load-gguf.js';
import { loadLlama2c } from './formats/llama2c/load-llama2c.js';
import { loadOnnxFolder } from './formats/onnx-folder.js';
import { UnsupportedModelError } from './formats/unsupported-model-error.js';
import type { LoadedLlm } from './llm-model.js';
import { defaultModelCacheDir } from '../builtin-models/ensure-builtin-models.js';
import { ensureGeneratedGraph } from './formats/graph-cache.js';
import { buildLlamaGraph, CONTRIB_IO, LLAMA_GRAPH_REVISION } from './graph/llama-graph.js';
import { ensureTinyLlama, tinyLlamaWeights, TINY_LLAMA_ARCH, TINY_LLAMA_REVISION } from './tiny-llama.js';

/** How `loadLlm` treats a model. */
export interface LoadLlmOptions {
  /** Name the model is known by; default: the model's own name, else the file or folder name. */
  name?: string;
  /** Cap on prompt + completion tokens; the model's own limit applies when lower. */
  maxContext?: number;
  /** Where generated ONNX graphs (from GGUF, llama2.c) are cached; default `$NUCLEUS_CACHE_DIR` or `<repo>/.cache/models`. */
  cacheDir?: string;
  /** The tokenizer file (`tok512.bin` …) a llama2.c checkpoint needs. */
  tokenizerPath?: string;
  /**
   * Graph style to build for GGUF / llama2.c; ONNX folders are always `generic`. Default `generic`; the generation
   * engine passes the style `chooseGraphStyle` picks for the model's backend.
   */
  graphStyle?: 'generic' | 'contrib';
}

/**
 * Loads a decoder LLM from a Hugging Face / Optimum ONNX export folder, a `.gguf` file or a llama2.c `.bin`
 * checkpoint (with `tokenizerPath`), into the one shape the generation engine runs.
 */
export async function loadLlm(path: string, options: LoadLlmOptions = {}): Promise<LoadedLlm> {
  const info = await stat(path);
  if (info.isDirectory()) return loadOnnxFolder(path, options);
  if (/\.gguf$/i.test(path)) return loadGguf(path, options);
  if (/\.bin$/i.test(path)) {
    if (!options.tokenizerPath) {
      throw new UnsupportedModelError(`llama2.c checkpoint ${path}`, ['no tokenizer: pass tokenizerPath (e.g. tok512.bin or tokenizer.bin)']);
    }
    return loadLlama2c(path, { ...options, tokenizerPath: options.tokenizerPath });
  }
  throw new UnsupportedModelError(path, ['unknown model format: expected an ONNX export folder, a .gguf file or a llama2.c .bin checkpoint']);
}

/**
 * The built-in tiny-random Llama, generated into the model cache on first use. With `graphStyle: 'contrib'` the same
 * weights come as a contrib-style graph (the folder itself holds the generic one, as an Optimum export would).
 */
export async function loadTinyLlama(options: Pick<LoadLlmOptions, 'cacheDir' | 'maxContext' | 'graphStyle'> = {}): Promise<LoadedLlm> {
  const dir = await ensureTinyLlama(options.cacheDir);
  const loaded = await loadOnnxFolder(dir, { name: 'tiny-llama', ...(options.maxContext ? { maxContext: options.maxContext } : {}) });
  if (options.graphStyle !== 'contrib') return { ...loaded, source: 'builtin' };
  const { path } = await ensureGeneratedGraph(options.cacheDir ?? defaultModelCacheDir(), 'builtin', `tiny-llama-r${TINY_LLAMA_REVISION}-contrib-r${LLAMA_GRAPH_REVISION}`, () =>
    buildLlamaGraph(tinyLlamaWeights(), TINY_LLAMA_ARCH, { ropeLayout: 'half', style: 'contrib', name: 'tiny_llama' }),
  );
  return { ...loaded, source: 'builtin', onnxPath: path, config: { ...loaded.config, graphStyle: 'contrib', contribIo: { ...CONTRIB_IO } } };
}
