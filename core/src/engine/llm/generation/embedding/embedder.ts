import * as ort from 'onnxruntime-node';
import { float16FromBits } from '@nucleus/sdk/onnx';
import { badRequest, type EmbeddingPooling } from '@nucleus/sdk';
import type { LlmTokenizer } from '@nucleus/sdk/llm';
import type { GenerationThreadSpec, WireEmbedRequest } from '../generation-messages.js';
import { ByteTokenizer } from './byte-tokenizer.js';
import { hiddenStateModel } from './hidden-state-model.js';
import { finishEmbedding, poolHiddenStates } from './pooling.js';

/** Inputs embedded in one session run; larger requests are split so memory stays bounded. */
const MAX_ROWS_PER_RUN = 32;

interface Backbone {
  /** Token ids of one input. */
  tokenize(input: string | number[], index: number): number[];
  /** Longest input in tokens. */
  maxTokens: number;
  defaultPooling: EmbeddingPooling;
  /** Hidden states `[rows, seq, hidden]` of right-padded rows. */
  run(rows: number[][], width: number): Promise<Float32Array>;
  dimensions: number;
}

/**
 * Embeds inputs in batches with an encoder (tiny BERT: mean or CLS pooling) or with a decoder (the final hidden
 * state of the last token). Rows are right-padded and masked, so each row's vector is what it would be alone.
 */
export class Embedder {
  private constructor(
    private readonly backbone: () => Promise<Backbone>,
    readonly dimensions: number,
    private readonly ownSession?: () => ort.InferenceSession | undefined,
  ) {}

  /** Releases the session this embedder opened itself (a decoder's hidden-state graph). */
  async release(): Promise<void> {
    await this.ownSession?.()?.release();
  }

  /** An encoder session with the byte tokenizer and the output `last_hidden_state` (or its first output). */
  static forEncoder(spec: GenerationThreadSpec, session: ort.InferenceSession): Embedder {
    const enc = spec.encoder!;
    if (enc.vocabSize < ByteTokenizer.minVocabSize)
      throw new Error(
        `an encoder needs at least ${ByteTokenizer.minVocabSize} token ids for the byte tokenizer; it has ${enc.vocabSize}`,
      );
    const tokenizer = new ByteTokenizer();
    const output = session.outputNames.includes('last_hidden_state') ? 'last_hidden_state' : session.outputNames[0]!;
    const backbone: Backbone = {
      tokenize: (input, index) =>
        typeof input === 'string' ? tokenizer.encode(input) : checkIds(input, enc.vocabSize, index),
      maxTokens: enc.maxPositions,
      defaultPooling: enc.pooling,
      dimensions: enc.hiddenSize,
      run: async (rows, width) => {
        const ids = new BigInt64Array(rows.length * width);
        const mask = new BigInt64Array(rows.length * width);
        rows.forEach((r, i) => r.forEach((id, t) => ((ids[i * width + t] = BigInt(id)), (mask[i * width + t] = 1n))));
        const feeds: Record<string, ort.Tensor> = {
          input_ids: new ort.Tensor('int64', ids, [rows.length, width]),
          attention_mask: new ort.Tensor('int64', mask, [rows.length, width]),
        };
        if (session.inputNames.includes('token_type_ids'))
          feeds.token_type_ids = new ort.Tensor('int64', new BigInt64Array(rows.length * width), [rows.length, width]);
        const out = await session.run(feeds, [output]);
        return out[output]!.data as Float32Array;
      },
    };
    return new Embedder(() => Promise.resolve(backbone), enc.hiddenSize);
  }

  /**
   * A decoder: its graph is opened a second time with the hidden states exposed (on first use only), and inputs
   * are run from an empty KV cache.
   */
  static forDecoder(
    spec: GenerationThreadSpec,
    tokenizer: LlmTokenizer,
    open: (model: string | Uint8Array) => Promise<ort.InferenceSession>,
  ): Embedder {
    const { config } = spec.decoder!;
    let ready: Promise<Backbone> | undefined;
    let opened: ort.InferenceSession | undefined;
    const start = async (): Promise<Backbone> => {
      const exposed = await hiddenStateModel(spec.onnxPath, config.hiddenSize, config.kvDtype);
      const session = await open(exposed.model);
      opened = session;
      const padId = config.padTokenId ?? config.eosTokenIds[0] ?? 0;
      return {
        tokenize: (input, index) =>
          typeof input === 'string'
            ? tokenizer.encode(input, { addBos: true })
            : checkIds(input, config.vocabSize, index),
        maxTokens: config.maxContext,
        defaultPooling: 'last',
        dimensions: config.hiddenSize,
        run: async (rows, width) => {
          const n = rows.length;
          const ids = new BigInt64Array(n * width).fill(BigInt(padId));
          const mask = new BigInt64Array(n * width);
          const positions = new BigInt64Array(n * width);
          rows.forEach((r, i) =>
            r.forEach((id, t) => {
              ids[i * width + t] = BigInt(id);
              mask[i * width + t] = 1n;
              positions[i * width + t] = BigInt(t);
            }),
          );
          const empty = () =>
            new ort.Tensor(config.kvDtype, config.kvDtype === 'float16' ? new Uint16Array(0) : new Float32Array(0), [
              n,
              config.numKvHeads,
              0,
              config.headDim,
            ]);
          const io = config.graphStyle === 'contrib' ? config.contribIo : undefined;
          const feeds: Record<string, ort.Tensor> = { input_ids: new ort.Tensor('int64', ids, [n, width]) };
          if (io) {
            // GroupQueryAttention takes right-padded rows by their lengths instead of a mask.
            feeds[io.positionIds] = new ort.Tensor('int64', positions, [n, width]);
            feeds[io.seqlensK] = new ort.Tensor(
              'int32',
              Int32Array.from(rows, (r) => r.length - 1),
              [n],
            );
            feeds[io.totalSequenceLength] = new ort.Tensor('int32', Int32Array.of(width), []);
            for (let l = 0; l < config.numLayers; l++) {
              feeds[io.pastKey.replace('%d', String(l))] = empty();
              feeds[io.pastValue.replace('%d', String(l))] = empty();
            }
          } else {
            feeds.attention_mask = new ort.Tensor('int64', mask, [n, width]);
            if (session.inputNames.includes('position_ids'))
              feeds.position_ids = new ort.Tensor('int64', positions, [n, width]);
            for (let l = 0; l < config.numLayers; l++) {
              for (const kind of ['key', 'value']) feeds[`past_key_values.${l}.${kind}`] = empty();
            }
          }
          const out = (await session.run(feeds, [exposed.output]))[exposed.output]!;
          if (out.type === 'float16') return Float32Array.from(out.data as Uint16Array, float16FromBits);
          return out.data as Float32Array;
        },
      };
    };
    return new Embedder(
      () => (ready ??= start()),
      config.hiddenSize,
      () => opened,
    );
  }

  /** One vector per input, in order, and the tokens they held. */
  async embed(request: WireEmbedRequest): Promise<{ vectors: Float32Array[]; promptTokens: number }> {
    if (request.inputs.length === 0) throw badRequest('empty_input', 'input holds no text to embed', 'input');
    const b = await this.backbone();
    const pooling = request.pooling ?? b.defaultPooling;
    const tokenized = request.inputs.map((input, i) => {
      const ids = b.tokenize(input, i);
      if (ids.length === 0) throw badRequest('empty_input', `input ${i} encodes to no tokens`, 'input');
      if (ids.length > b.maxTokens) {
        throw badRequest(
          'context_length_exceeded',
          `input ${i} has ${ids.length} tokens; this model's maximum input length is ${b.maxTokens} tokens`,
          'input',
        );
      }
      return ids;
    });
    const vectors: Float32Array[] = [];
    for (let from = 0; from < tokenized.length; from += MAX_ROWS_PER_RUN) {
      const rows = tokenized.slice(from, from + MAX_ROWS_PER_RUN);
      const width = Math.max(...rows.map((r) => r.length));
      const hidden = await b.run(rows, width);
      const pooled = poolHiddenStates(
        hidden,
        [rows.length, width, b.dimensions],
        rows.map((r) => ({ firstReal: 0, length: r.length })),
        pooling,
      );
      for (const v of pooled)
        vectors.push(
          finishEmbedding(v, {
            normalize: request.normalize,
            ...(request.dimensions !== undefined && { dimensions: request.dimensions }),
          }),
        );
    }
    return { vectors, promptTokens: tokenized.reduce((n, r) => n + r.length, 0) };
  }
}

function checkIds(ids: number[], vocabSize: number, index: number): number[] {
  const bad = ids.find((id) => !Number.isInteger(id) || id < 0 || id >= vocabSize);
  if (bad !== undefined)
    throw badRequest(
      'invalid_token_id',
      `input ${index} holds token id ${bad}, outside the vocabulary (0 to ${vocabSize - 1})`,
      'input',
    );
  return ids;
}
