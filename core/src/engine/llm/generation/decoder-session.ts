import * as ort from 'onnxruntime-node';
import type { DecoderConfig } from '@nucleus/sdk/llm';
import { KvBatch, type KvArray, type KvLayer, type KvLayout } from './kv-batch.js';
import type { LogitsRow } from './sampler.js';

/** What one forward pass gives the loop: the logits of each row's last position and the grown cache. */
export interface StepResult {
  logits: LogitsRow[];
  kv: KvBatch;
}

/** The mechanism of one step, apart from who is in it: the loop only ever calls these two. */
export interface DecoderRunner {
  readonly layout: KvLayout;
  /**
   * Runs prompts (left-padded into one batch) from an empty cache, or, with `past`, from each row's cached prefix
   * (`past` has one row per prompt; a prompt is then only the tokens after its row's prefix).
   */
  prefill(prompts: readonly (readonly number[])[], past?: KvBatch): Promise<StepResult>;
  /** Appends one token to every row of `kv`. */
  decode(kv: KvBatch, tokens: readonly number[]): Promise<StepResult>;
  /**
   * Appends the same number of tokens to every row (the last token and its drafts, speculative decoding) and gives
   * the logits of every new position, `logits[row][i]` after the row's i-th new token. Runners without it do not
   * speculate.
   */
  verify?(kv: KvBatch, tokens: readonly (readonly number[])[]): Promise<VerifyResult>;
}

/** What a verify step gives: every new position's logits per row, and the cache grown by all the new tokens. */
export interface VerifyResult {
  logits: LogitsRow[][];
  kv: KvBatch;
}

/** The KV layout a decoder config implies. */
export function kvLayoutOf(config: DecoderConfig): KvLayout {
  return { numLayers: config.numLayers, numKvHeads: config.numKvHeads, headDim: config.headDim, dtype: config.kvDtype };
}

/**
 * Runs a decoder in the Hugging Face / Optimum generic layout: `input_ids`, `attention_mask`, `position_ids` and
 * `past_key_values.N.key|value` in; `logits` and `present.N.key|value` out. Rows are left-padded; each row's
 * positions count its own real tokens only, so a padded row computes what it would alone.
 */
export class DecoderSession implements DecoderRunner {
  readonly layout: KvLayout;
  readonly #session: ort.InferenceSession;
  readonly #padId: number;
  readonly #idsType: 'int64' | 'int32';
  readonly #hasPositions: boolean;
  readonly #hasCacheBranch: boolean;
  readonly #fetches: string[];

  constructor(session: ort.InferenceSession, config: DecoderConfig) {
    this.#session = session;
    this.layout = kvLayoutOf(config);
    this.#padId = config.padTokenId ?? config.eosTokenIds[0] ?? 0;
    const inputs = new Set(session.inputNames);
    for (const name of ['input_ids', 'attention_mask']) {
      if (!inputs.has(name))
        throw new Error(`the decoder has no '${name}' input (inputs: ${session.inputNames.join(', ')})`);
    }
    for (let l = 0; l < config.numLayers; l++) {
      for (const kind of ['key', 'value']) {
        if (!inputs.has(`past_key_values.${l}.${kind}`))
          throw new Error(
            `the decoder has no 'past_key_values.${l}.${kind}' input; only the generic KV-cache layout is supported`,
          );
        if (!session.outputNames.includes(`present.${l}.${kind}`))
          throw new Error(`the decoder has no 'present.${l}.${kind}' output`);
      }
    }
    if (!session.outputNames.includes('logits')) throw new Error(`the decoder has no 'logits' output`);
    const ids = session.inputMetadata.find((m) => m.name === 'input_ids');
    this.#idsType = ids?.isTensor && ids.type === 'int32' ? 'int32' : 'int64';
    this.#hasPositions = inputs.has('position_ids');
    this.#hasCacheBranch = inputs.has('use_cache_branch');
    this.#fetches = ['logits'];
    for (let l = 0; l < config.numLayers; l++) this.#fetches.push(`present.${l}.key`, `present.${l}.value`);
  }

  async prefill(prompts: readonly (readonly number[])[], past?: KvBatch): Promise<StepResult> {
    const rows = prompts.length;
    const base = past ?? KvBatch.empty(this.layout, rows);
    if (base.rows !== rows) throw new Error(`a prefill of ${rows} prompts got a past of ${base.rows} rows`);
    const width = Math.max(...prompts.map((p) => p.length));
    const P = base.pastLength;
    // Mask columns: the past as the cache has it (left padding, then the row's cached tokens), then the new tokens,
    // left-padded to the widest. A row with a cached prefix and a shorter prompt has padding between the two.
    const total = P + width;
    const ids = new Array<number>(rows * width).fill(this.#padId);
    const mask = new BigInt64Array(rows * total);
    const positions = new BigInt64Array(rows * width);
    prompts.forEach((p, r) => {
      const cached = base.lengths[r]!;
      mask.fill(1n, r * total + P - cached, r * total + P);
      const pad = width - p.length;
      for (let i = 0; i < p.length; i++) {
        ids[r * width + pad + i] = p[i]!;
        mask[r * total + P + pad + i] = 1n;
        positions[r * width + pad + i] = BigInt(cached + i);
      }
    });
    const out = await this.#run(base, ids, width, mask, positions);
    const lengths = prompts.map((p, r) => base.lengths[r]! + p.length);
    const gapless = prompts.every((p, r) => p.length === width || base.lengths[r] === 0);
    const kv = gapless
      ? KvBatch.fromTensors(this.layout, lengths, total, out.presents)
      : closeGaps(this.layout, out.presents, base, prompts, width);
    return { logits: out.logits, kv };
  }

  async decode(kv: KvBatch, tokens: readonly number[]): Promise<StepResult> {
    const positions = BigInt64Array.from(kv.lengths, (n) => BigInt(n));
    const out = await this.#run(kv, tokens, 1, kv.attentionMask(1), positions);
    return { logits: out.logits, kv: kv.advance(out.presents, 1) };
  }

  async verify(kv: KvBatch, tokens: readonly (readonly number[])[]): Promise<VerifyResult> {
    const width = tokens[0]?.length ?? 0;
    if (tokens.length !== kv.rows || width === 0 || tokens.some((t) => t.length !== width))
      throw new Error(`a verify step needs ${kv.rows} rows of one non-zero width`);
    const positions = new BigInt64Array(kv.rows * width);
    kv.lengths.forEach((n, r) => {
      for (let i = 0; i < width; i++) positions[r * width + i] = BigInt(n + i);
    });
    const out = await this.#run(kv, tokens.flat(), width, kv.attentionMask(width), positions, width);
    const logits: LogitsRow[][] = [];
    for (let r = 0; r < kv.rows; r++) logits.push(out.logits.slice(r * width, (r + 1) * width));
    return { logits, kv: kv.advance(out.presents, width) };
  }

  // `last` positions' logits per row (the last one by default), row after row.
  async #run(
    past: KvBatch,
    ids: readonly number[],
    width: number,
    mask: BigInt64Array,
    positions: BigInt64Array,
    last = 1,
  ): Promise<{ logits: LogitsRow[]; presents: KvLayer[] }> {
    const rows = past.rows;
    const feeds: Record<string, ort.Tensor> = {
      input_ids:
        this.#idsType === 'int32'
          ? new ort.Tensor('int32', Int32Array.from(ids), [rows, width])
          : new ort.Tensor(
              'int64',
              BigInt64Array.from(ids, (v) => BigInt(v)),
              [rows, width],
            ),
      attention_mask: new ort.Tensor('int64', mask, [rows, mask.length / rows]),
    };
    if (this.#hasPositions) feeds.position_ids = new ort.Tensor('int64', positions, [rows, width]);
    if (this.#hasCacheBranch)
      feeds.use_cache_branch = new ort.Tensor('bool', new Uint8Array([past.pastLength > 0 ? 1 : 0]), [1]);
    const shape = past.shape;
    past.layers.forEach((layer, l) => {
      feeds[`past_key_values.${l}.key`] = new ort.Tensor(this.layout.dtype, layer.key, shape);
      feeds[`past_key_values.${l}.value`] = new ort.Tensor(this.layout.dtype, layer.value, shape);
    });
    const result = await this.#session.run(feeds, this.#fetches);
    const logits = result.logits!;
    const [, seq, vocab] = logits.dims as number[];
    const logitRows: LogitsRow[] = [];
    for (let r = 0; r < rows; r++) {
      for (let p = seq! - last; p < seq!; p++) {
        const from = (r * seq! + p) * vocab!;
        logitRows.push(
          logits.type === 'float16'
            ? { float16: (logits.data as Uint16Array).subarray(from, from + vocab!) }
            : (logits.data as Float32Array).subarray(from, from + vocab!),
        );
      }
    }
    const presents: KvLayer[] = [];
    for (let l = 0; l < this.layout.numLayers; l++) {
      presents.push({
        key: result[`present.${l}.key`]!.data as KvArray,
        value: result[`present.${l}.value`]!.data as KvArray,
      });
    }
    return { logits: logitRows, presents };
  }
}

// The present of a prefill from a past where some rows have padding between their cached tokens and their new ones:
// each row's two runs of real tokens are copied together, left-padded as KvBatch expects.
function closeGaps(
  layout: KvLayout,
  presents: readonly KvLayer[],
  past: KvBatch,
  prompts: readonly (readonly number[])[],
  width: number,
): KvBatch {
  const { numKvHeads: H, headDim: D } = layout;
  const P = past.pastLength;
  const from = P + width;
  const lengths = prompts.map((p, r) => past.lengths[r]! + p.length);
  const to = Math.max(...lengths);
  const layers = presents.map((layer) => {
    const out = {
      key: allocate(layout, prompts.length * H * to * D),
      value: allocate(layout, prompts.length * H * to * D),
    };
    prompts.forEach((p, r) => {
      const cached = past.lengths[r]!;
      for (let h = 0; h < H; h++) {
        const src = (r * H + h) * from * D;
        const dst = ((r * H + h) * to + (to - lengths[r]!)) * D;
        for (const kind of ['key', 'value'] as const) {
          out[kind].set(layer[kind].subarray(src + (P - cached) * D, src + P * D), dst);
          out[kind].set(layer[kind].subarray(src + (from - p.length) * D, src + from * D), dst + cached * D);
        }
      }
    });
    return out;
  });
  return KvBatch.fromTensors(layout, lengths, to, layers);
}

function allocate(layout: KvLayout, length: number): KvArray {
  return layout.dtype === 'float16' ? new Uint16Array(length) : new Float32Array(length);
}
