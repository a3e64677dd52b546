import { GgufFormatError, type GgufFile, type GgufValue } from './gguf-reader.js';

/** Positions × head dim a file may ask RoPE tables for, whatever its size (64 MiB of float32 per table). */
const MIN_ROPE_TABLE_VALUES = 2 ** 24;

// Sizes that are a dimension of some tensor in every model of every architecture: none can exceed the largest one.
const TENSOR_SIZED_KEYS = [
  'embedding_length',
  'feed_forward_length',
  'attention.head_count',
  'attention.head_count_kv',
  'attention.key_length',
  'attention.value_length',
  'rope.dimension_count',
  'expert_count',
  'vocab_size',
] as const;

/**
 * Refuses a GGUF header whose sizes its own tensors cannot back: a `block_count` beyond the `blk.N.` layers present,
 * an embedding length, head count, vocabulary or context length out of proportion to the tensor dimensions. Run it
 * before anything loops or allocates by those numbers, so that a tiny file declaring three million layers is refused
 * in microseconds; throws a `GgufFormatError` naming each key and its value. Anything it leaves alone (a missing
 * key, a wrong type, a shape that merely does not match) is for the architecture checks to report.
 */
export function checkGgufLimits(file: GgufFile): void {
  const md = file.metadata;
  const arch = md.get('general.architecture');
  if (typeof arch !== 'string') return;
  const problems: string[] = [];
  const value = (key: string): number | undefined => largest(md.get(`${arch}.${key}`));

  const layers = new Set<number>();
  let largestDim = 0;
  let weights = 0;
  for (const t of file.tensors) {
    const layer = /(?:^|\.)blk\.(\d+)\./.exec(t.name);
    if (layer) layers.add(Number(layer[1]));
    for (const d of t.dims) largestDim = Math.max(largestDim, d);
    weights += t.elements;
  }

  const blocks = value('block_count');
  if (blocks !== undefined && blocks > layers.size) {
    const present =
      layers.size === 0
        ? 'no layer (blk.N) tensors'
        : `tensors for only ${layers.size} layer${layers.size === 1 ? '' : 's'} (blk.N)`;
    problems.push(`${arch}.block_count is ${show(md, `${arch}.block_count`)}, but the file holds ${present}`);
  }

  const embd = file.tensors.find((t) => t.name === 'token_embd.weight');
  const hidden = value('embedding_length');
  if (embd && embd.dims.length === 2 && hidden !== undefined && hidden !== embd.dims[0]) {
    problems.push(
      `${arch}.embedding_length is ${show(md, `${arch}.embedding_length`)}, but token_embd.weight is [${embd.dims.join(', ')}] (embedding length ${embd.dims[0]})`,
    );
  }
  for (const key of TENSOR_SIZED_KEYS) {
    const v = value(key);
    if (v !== undefined && v > largestDim) {
      problems.push(
        `${arch}.${key} is ${show(md, `${arch}.${key}`)}, larger than any tensor dimension in the file (the largest is ${largestDim})`,
      );
    }
  }

  const tokens = md.get('tokenizer.ggml.tokens');
  if (embd && embd.dims.length === 2 && Array.isArray(tokens) && tokens.length > embd.dims[1]!) {
    problems.push(
      `tokenizer.ggml.tokens holds ${tokens.length} tokens, but token_embd.weight [${embd.dims.join(', ')}] embeds only ${embd.dims[1]}`,
    );
  }

  // Rotary tables hold context × head dim values; a length no weight backs is a request for gigabytes of tables.
  const context = value('context_length');
  const heads = value('attention.head_count');
  const headDim =
    value('attention.key_length') ?? (hidden !== undefined && heads ? Math.max(1, Math.floor(hidden / heads)) : 1);
  const allowed = Math.max(weights, MIN_ROPE_TABLE_VALUES);
  if (context !== undefined && context * headDim > allowed) {
    problems.push(
      `${arch}.context_length is ${show(md, `${arch}.context_length`)}: RoPE tables for that many positions (× head dim ${headDim}) would hold more values than the ${weights} weights of the file's tensors`,
    );
  }

  if (problems.length > 0)
    throw new GgufFormatError(file.path, `sizes the tensors cannot back: ${problems.join('; ')}`);
}

// The number a size key holds (the largest, for a per-layer array), or undefined for anything else.
function largest(v: GgufValue | undefined): number | undefined {
  if (typeof v === 'number') return v;
  if (typeof v === 'bigint') return Number(v);
  if (Array.isArray(v)) {
    let max: number | undefined;
    for (const e of v) {
      const n = typeof e === 'number' ? e : typeof e === 'bigint' ? Number(e) : undefined;
      if (n !== undefined && (max === undefined || n > max)) max = n;
    }
    return max;
  }
  return undefined;
}

function show(md: ReadonlyMap<string, GgufValue>, key: string): string {
  const v = md.get(key);
  return Array.isArray(v) ? `up to ${largest(v)} (per layer)` : String(v);
}
