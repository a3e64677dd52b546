import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { FormatLoadContext, FormatMatch, ModelFormat, ModelSource } from '@nucleus/sdk';
import type { LoadedLlm } from '@nucleus/sdk/llm';
import { LOAD_QUANTIZATIONS, type LoadQuantization } from './hf-weights.js';
import { INDEX_FILE, safetensorsFilesIn } from './safetensors-checkpoint.js';
import { loadSafetensors } from './load-safetensors.js';

/** Where an ONNX export keeps its decoder: such a folder is format-onnx's, even with safetensors beside it. */
const ONNX_DECODERS = [
  'model.onnx',
  'decoder_model.onnx',
  join('onnx', 'model.onnx'),
  join('onnx', 'decoder_model.onnx'),
];

/** True for a Hugging Face checkpoint folder: config.json with safetensors weights, and no exported ONNX decoder. */
export function isCheckpointFolder(dir: string): boolean {
  if (!existsSync(join(dir, 'config.json'))) return false;
  if (ONNX_DECODERS.some((f) => existsSync(join(dir, f)))) return false;
  return existsSync(join(dir, INDEX_FILE)) || safetensorsFilesIn(dir).length > 0;
}

/**
 * Hugging Face safetensors checkpoints (Llama, Mistral, Qwen2): the Llama graph is built from the weights, as for
 * GGUF, and the tokenizer and chat template come from the folder. It claims a folder more surely than format-onnx
 * claims any folder with config.json and a tokenizer, and never one that holds an ONNX decoder.
 */
export const safetensorsFormat: ModelFormat = {
  name: 'safetensors',
  accepts:
    'a Hugging Face checkpoint folder (config.json, *.safetensors or model.safetensors.index.json with its shards, tokenizer.json) of a LlamaForCausalLM, MistralForCausalLM or Qwen2ForCausalLM',
  detect(source: ModelSource): FormatMatch | undefined {
    if (source.type === 'directory') {
      if (!isCheckpointFolder(source.path)) return undefined;
      return {
        confidence: 0.95,
        reason: 'a folder with config.json and safetensors weights, as a Hugging Face checkpoint has',
        kind: 'llm',
        buildsGraph: true,
      };
    }
    if (/\.safetensors$/i.test(source.path))
      return {
        confidence: 0,
        reason:
          'is one safetensors file: serve the folder that holds it with config.json, tokenizer.json and tokenizer_config.json',
        kind: 'llm',
      };
    return undefined;
  },
  loadLlm(source: ModelSource, context: FormatLoadContext): Promise<LoadedLlm> {
    const quantize = context.options.quantize;
    return loadSafetensors(source.path, {
      name: context.name,
      cacheDir: context.cacheDir,
      graphStyle: context.graphStyle,
      progress: context.progress,
      ...(context.maxContext !== undefined && { maxContext: context.maxContext }),
      // Other names are left to the `modelTransform` plugins, which rewrite the graph after it is built.
      ...(LOAD_QUANTIZATIONS.includes(quantize as LoadQuantization) && { quantize: quantize as LoadQuantization }),
    });
  },
};
