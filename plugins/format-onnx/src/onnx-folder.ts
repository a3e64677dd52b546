import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { loadModel, type Dim, type ValueInfo } from '@nucleus/sdk/onnx';
import {
  hfChatTemplate,
  hfTokenIds,
  UnsupportedModelError,
  type DecoderConfig,
  type LoadedLlm,
} from '@nucleus/sdk/llm';

/** The config.json fields of a Hugging Face Llama that the loader reads. */
interface HfLlamaConfig {
  model_type?: string;
  architectures?: string[];
  vocab_size?: number;
  hidden_size?: number;
  num_hidden_layers?: number;
  num_attention_heads?: number;
  num_key_value_heads?: number;
  head_dim?: number;
  max_position_embeddings?: number;
  rms_norm_eps?: number;
  rope_theta?: number;
  bos_token_id?: number | null;
  eos_token_id?: number | number[] | null;
  pad_token_id?: number | null;
}

/** Where the ONNX decoder of an export folder may be, in the order looked at (Optimum, then transformers.js). */
const DECODER_FILES = [
  'model.onnx',
  'decoder_model.onnx',
  join('onnx', 'model.onnx'),
  join('onnx', 'decoder_model.onnx'),
];

/**
 * Loads a Hugging Face / Optimum export folder (`config.json`, `tokenizer.json`, `tokenizer_config.json`, a decoder
 * ONNX in the generic layout). Checks the graph's inputs and outputs against the layout and refuses, listing every
 * mismatch, rather than failing later inside a session run.
 */
export async function loadOnnxFolder(
  dir: string,
  options: { name?: string; maxContext?: number } = {},
): Promise<LoadedLlm> {
  const problems: string[] = [];
  const readJson = async (file: string, required: boolean): Promise<Record<string, unknown> | undefined> => {
    const path = join(dir, file);
    if (!existsSync(path)) {
      if (required) problems.push(`${file} is missing`);
      return undefined;
    }
    try {
      return JSON.parse(await readFile(path, 'utf8')) as Record<string, unknown>;
    } catch (err) {
      problems.push(`${file} is not valid JSON (${(err as Error).message})`);
      return undefined;
    }
  };
  const config = ((await readJson('config.json', true)) ?? {}) as HfLlamaConfig;
  const tokenizerJson = await readJson('tokenizer.json', true);
  const tokenizerConfig = (await readJson('tokenizer_config.json', false)) ?? {};
  const generationConfig = (await readJson('generation_config.json', false)) ?? {};

  if (config.model_type !== undefined && config.model_type !== 'llama') {
    problems.push(`model_type "${config.model_type}" (only "llama" is supported)`);
  }
  const numeric = (key: keyof HfLlamaConfig): number => {
    const v = config[key];
    if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) {
      problems.push(
        `config.json: ${key} is ${v === undefined ? 'missing' : `not a positive integer (${JSON.stringify(v)})`}`,
      );
      return 0;
    }
    return v;
  };
  const vocabSize = numeric('vocab_size');
  const hiddenSize = numeric('hidden_size');
  const numLayers = numeric('num_hidden_layers');
  const numHeads = numeric('num_attention_heads');
  const numKvHeads = config.num_key_value_heads === undefined ? numHeads : numeric('num_key_value_heads');
  const headDim = config.head_dim ?? (numHeads > 0 ? hiddenSize / numHeads : 0);
  const maxPositions = numeric('max_position_embeddings');

  const onnxRel = DECODER_FILES.find((f) => existsSync(join(dir, f)));
  let kvDtype: DecoderConfig['kvDtype'] = 'float32';
  if (!onnxRel) {
    const found = (await readdir(dir).catch(() => [] as string[])).filter((f) => f.endsWith('.onnx'));
    problems.push(
      `no decoder ONNX file (looked for ${DECODER_FILES.join(', ')})` +
        (found.length
          ? `; found ${found.join(', ')}, whose layout (e.g. Optimum's merged decoder with use_cache_branch) is not supported`
          : ''),
    );
  } else {
    const model = await loadModel(join(dir, onnxRel), { externalData: false });
    const initializers = new Set(model.graph.initializers.map((t) => t.name));
    const inputs = model.graph.inputs.filter((i) => !initializers.has(i.name));
    kvDtype = checkGenericLayout(inputs, model.graph.outputs, { numLayers, numKvHeads, headDim, vocabSize }, problems);
  }
  if (problems.length > 0) throw new UnsupportedModelError(`ONNX model folder ${dir}`, problems);

  const generationEos = hfTokenIds(generationConfig.eos_token_id);
  const eosTokenIds = generationEos.length > 0 ? generationEos : hfTokenIds(config.eos_token_id);
  const bosTokenId = typeof config.bos_token_id === 'number' ? config.bos_token_id : undefined;
  const decoder: DecoderConfig = {
    architecture: 'llama',
    vocabSize,
    hiddenSize,
    numLayers,
    numHeads,
    numKvHeads,
    headDim,
    maxContext: Math.min(maxPositions, options.maxContext ?? Infinity),
    eosTokenIds,
    graphStyle: 'generic',
    kvDtype,
  };
  if (bosTokenId !== undefined) decoder.bosTokenId = bosTokenId;
  if (typeof config.pad_token_id === 'number') decoder.padTokenId = config.pad_token_id;

  const loaded: LoadedLlm = {
    name: options.name ?? basename(dir),
    source: 'onnx',
    config: decoder,
    onnxPath: join(dir, onnxRel!),
    tokenizer: {
      kind: 'hf',
      tokenizerJson,
      tokenizerConfig,
      ...(bosTokenId !== undefined ? { bosTokenId } : {}),
      ...(eosTokenIds.length > 0 ? { eosTokenIds } : {}),
    },
  };
  const template = await hfChatTemplate(dir, tokenizerConfig);
  if (template !== undefined) loaded.chatTemplate = template;
  return loaded;
}

interface LayoutFacts {
  numLayers: number;
  numKvHeads: number;
  headDim: number;
  vocabSize: number;
}

/** Compares a decoder's I/O to the generic layout; pushes every mismatch; returns the KV element type. */
export function checkGenericLayout(
  inputs: ValueInfo[],
  outputs: ValueInfo[],
  f: LayoutFacts,
  problems: string[],
): DecoderConfig['kvDtype'] {
  const byName = (list: ValueInfo[]): Map<string, ValueInfo> => new Map(list.map((v) => [v.name, v]));
  const ins = byName(inputs);
  const outs = byName(outputs);
  const expectTensor = (
    where: 'input' | 'output',
    v: ValueInfo | undefined,
    name: string,
    dtypes: string[],
    rank: number,
  ): string | undefined => {
    if (!v) {
      problems.push(`${where} ${name} is missing`);
      return undefined;
    }
    if (v.type?.kind !== 'tensor') {
      problems.push(`${where} ${name} is not a tensor`);
      return undefined;
    }
    if (!dtypes.includes(v.type.dtype))
      problems.push(`${where} ${name} is ${v.type.dtype}, expected ${dtypes.join(' or ')}`);
    if (v.type.shape && v.type.shape.length !== rank)
      problems.push(`${where} ${name} has rank ${v.type.shape.length}, expected ${rank}`);
    return v.type.dtype;
  };
  const expectDim = (what: string, dim: Dim | undefined, want: number, label: string): void => {
    if (typeof dim === 'number' && want > 0 && dim !== want)
      problems.push(`${what}: ${label} is ${dim}, config.json says ${want}`);
  };

  expectTensor('input', ins.get('input_ids'), 'input_ids', ['int64'], 2);
  expectTensor('input', ins.get('attention_mask'), 'attention_mask', ['int64'], 2);
  expectTensor('input', ins.get('position_ids'), 'position_ids', ['int64'], 2);
  expectTensor('output', outs.get('logits'), 'logits', ['float32'], 3);
  expectDim(
    'output logits',
    outs.get('logits')?.type?.kind === 'tensor'
      ? (outs.get('logits')!.type as { shape?: Dim[] }).shape?.[2]
      : undefined,
    f.vocabSize,
    'vocab dim',
  );

  let kvDtype: DecoderConfig['kvDtype'] = 'float32';
  const pastLayers = [...ins.keys()].filter((n) => /^past_key_values\.\d+\.key$/.test(n)).length;
  if (f.numLayers > 0 && pastLayers !== f.numLayers) {
    problems.push(`${pastLayers} past_key_values.N.key inputs, config.json has ${f.numLayers} layers`);
  }
  for (let l = 0; l < f.numLayers; l++) {
    for (const part of ['key', 'value']) {
      const input = `past_key_values.${l}.${part}`;
      const output = `present.${l}.${part}`;
      const dt = expectTensor('input', ins.get(input), input, ['float32', 'float16'], 4);
      expectTensor('output', outs.get(output), output, ['float32', 'float16'], 4);
      if (l === 0 && part === 'key' && dt === 'float16') kvDtype = 'float16';
      const shape = (ins.get(input)?.type as { shape?: Dim[] } | undefined)?.shape;
      expectDim(`input ${input}`, shape?.[1], f.numKvHeads, 'kv heads dim');
      expectDim(`input ${input}`, shape?.[3], f.headDim, 'head dim');
    }
  }
  const known = new Set(['input_ids', 'attention_mask', 'position_ids']);
  const extra = [...ins.keys()].filter((n) => !known.has(n) && !/^past_key_values\.\d+\.(key|value)$/.test(n));
  for (const n of extra) problems.push(`input ${n} is not part of the generic decoder layout`);
  return kvDtype;
}
