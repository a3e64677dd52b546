import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { FormatLoadContext, FormatMatch, ModelFormat, ModelSource } from '@nucleus/sdk';
import type { LoadedLlm } from '@nucleus/sdk/llm';
import { loadOnnxFolder } from './onnx-folder.js';

const PYTORCH = /\.(pt|pth|ckpt)$/i;

/** True for a folder a Hugging Face / Optimum decoder export leaves: `config.json` beside a tokenizer. */
export function isExportFolder(dir: string): boolean {
  return (
    existsSync(join(dir, 'config.json')) &&
    (existsSync(join(dir, 'tokenizer.json')) || existsSync(join(dir, 'tokenizer_config.json')))
  );
}

// A model.onnx, or version folders (1/, 2/ …) holding one, as Triton lays out a model repository.
function isTensorFolder(dir: string): boolean {
  if (existsSync(join(dir, 'model.onnx'))) return true;
  return readdirSync(dir, { withFileTypes: true }).some(
    (d) => d.isDirectory() && existsSync(join(dir, d.name, 'model.onnx')),
  );
}

/**
 * ONNX in the layouts people export it: a Hugging Face / Optimum decoder folder (served as an LLM, with its
 * tokenizer.json and chat template), and plain graphs (an .onnx file, a version folder) served as tensor models.
 * PyTorch pickles are named here, so that a user who has one hears what to convert it to.
 */
export const onnxFormat: ModelFormat = {
  name: 'onnx',
  accepts:
    'an .onnx file or a folder of version folders (tensor models), or a Hugging Face/Optimum ONNX export folder (config.json, tokenizer.json, model.onnx) of a Llama decoder',
  detect(source: ModelSource): FormatMatch | undefined {
    if (source.type === 'directory') {
      if (isExportFolder(source.path))
        return {
          confidence: 0.9,
          reason: 'a folder with config.json and a tokenizer, as a Hugging Face export has',
          kind: 'llm',
          buildsGraph: false,
        };
      if (isTensorFolder(source.path))
        return { confidence: 0.8, reason: 'a folder holding model.onnx or version folders with one', kind: 'tensor' };
      return undefined;
    }
    if (/\.onnx$/i.test(source.path)) return { confidence: 0.8, reason: 'an .onnx file', kind: 'tensor' };
    if (PYTORCH.test(source.path)) {
      return {
        confidence: 0,
        reason:
          'is a PyTorch checkpoint: pickles are not loaded, because reading one can run arbitrary code. Export the model to ONNX ' +
          '(torch.onnx.export, or `optimum-cli export onnx --model <dir> <out>` for Hugging Face models) or convert it to GGUF ' +
          "(llama.cpp's convert_hf_to_gguf.py), then serve that",
        kind: 'tensor',
      };
    }
    return undefined;
  },
  loadLlm(source: ModelSource, context: FormatLoadContext): Promise<LoadedLlm> {
    return loadOnnxFolder(source.path, {
      name: context.name,
      ...(context.maxContext !== undefined && { maxContext: context.maxContext }),
    });
  },
};
