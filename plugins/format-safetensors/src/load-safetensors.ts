import { noProgress, type Progress } from '@nucleus/sdk';
import {
  builtDecoderConfig,
  ensureLlamaGraphOf,
  hfChatTemplate,
  hfTokenIds,
  runBuildWorker,
  UnsupportedModelError,
  type LoadedLlm,
  type TokenizerSpec,
} from '@nucleus/sdk/llm';
import { checkpointName, inspectCheckpoint, readFolderJson } from './hf-checkpoint.js';
import { readCheckpointWeights, type LoadQuantization } from './hf-weights.js';

/** Options for `loadSafetensors`. */
export interface LoadSafetensorsOptions {
  name?: string;
  maxContext?: number;
  /** Where the generated graph is cached (`<cacheDir>/safetensors/<sha256>-<style>…/`). */
  cacheDir: string;
  graphStyle?: 'generic' | 'contrib';
  /** Quantize the float weights into 8- or 4-bit blocks of 32 as they are read (`models[].quantize`). */
  quantize?: LoadQuantization;
  /** A new progress for each long step (hashing, building the graph). */
  progress?: () => Progress;
}

/**
 * Loads a Hugging Face safetensors checkpoint folder (config.json, `*.safetensors` with their index when sharded,
 * tokenizer.json, tokenizer_config.json): checks config and tensors first and refuses with the full list; builds the
 * same Llama graph the GGUF format builds (in a child process) into the model cache, keyed by the SHA-256 of the
 * config and every shard, reusing it on later loads; takes the tokenizer and chat template from the folder.
 */
export async function loadSafetensors(dir: string, options: LoadSafetensorsOptions): Promise<LoadedLlm> {
  const model = inspectCheckpoint(dir);
  const problems: string[] = [];
  const tokenizerJson = readFolderJson(dir, 'tokenizer.json', problems, true);
  const tokenizerConfig = readFolderJson(dir, 'tokenizer_config.json', problems, false) ?? {};
  const generationConfig = readFolderJson(dir, 'generation_config.json', problems, false) ?? {};
  if (problems.length > 0) throw new UnsupportedModelError(`safetensors checkpoint ${dir}`, problems);

  const style = options.graphStyle ?? 'generic';
  const job: SafetensorsGraphJob = {
    dir,
    cacheDir: options.cacheDir,
    style,
    ...(options.quantize && { quantize: options.quantize }),
  };
  // Reading multi-GB shards and building the graph take minutes on real checkpoints: a child process does it, and
  // gives all its memory back when it ends.
  const onnxPath = await runBuildWorker<string>(
    new URL('./safetensors-graph-worker.js', import.meta.url),
    job,
    options.progress ?? (() => noProgress),
  );

  const generationEos = hfTokenIds(generationConfig.eos_token_id);
  const eosTokenIds = generationEos.length > 0 ? generationEos : hfTokenIds(model.config.eos_token_id);
  const bos = model.config.bos_token_id;
  const bosTokenId = typeof bos === 'number' ? bos : undefined;
  const config = builtDecoderConfig(model.arch, style, {
    eosTokenIds,
    ...(options.maxContext !== undefined && { maxContext: options.maxContext }),
  });
  if (bosTokenId !== undefined) config.bosTokenId = bosTokenId;
  const pad = model.config.pad_token_id;
  if (typeof pad === 'number') config.padTokenId = pad;
  const tokenizer: TokenizerSpec = {
    kind: 'hf',
    tokenizerJson,
    tokenizerConfig,
    ...(bosTokenId !== undefined && { bosTokenId }),
    ...(eosTokenIds.length > 0 && { eosTokenIds }),
  };
  const loaded: LoadedLlm = {
    name: options.name ?? checkpointName(dir, model.config),
    source: 'safetensors',
    config,
    onnxPath,
    tokenizer,
  };
  const template = await hfChatTemplate(dir, tokenizerConfig);
  if (template !== undefined) loaded.chatTemplate = template;
  if (options.quantize) loaded.quantized = options.quantize;
  return loaded;
}

/** What the graph worker builds: plain data, posted to the child process. */
export interface SafetensorsGraphJob {
  dir: string;
  cacheDir: string;
  style: 'generic' | 'contrib';
  quantize?: LoadQuantization;
}

/** The cached graph of a checkpoint folder, built when missing (`loadSafetensors` calls it in a child process). */
export async function ensureSafetensorsGraph(job: SafetensorsGraphJob, progress: () => Progress): Promise<string> {
  const model = inspectCheckpoint(job.dir);
  return ensureLlamaGraphOf(job.dir, {
    cacheDir: job.cacheDir,
    progress,
    kind: 'safetensors',
    inputs: model.inputs,
    style: job.style,
    arch: model.arch,
    weights: (reading) => readCheckpointWeights(model, reading, job.quantize),
    ...(job.quantize && { variant: job.quantize }),
    // transformers rotates the two halves of each head (`rotate_half`) with q_proj/k_proj as stored.
    ropeLayout: 'half',
    name: `safetensors_${model.architecture}`,
  });
}
