/**
 * The contract between model formats and the generation
 * engine: whatever the source, loading yields an ONNX decoder graph on disk, its architecture facts
 * and a tokenizer that can be rebuilt inside a worker thread from plain data.
 */

/** Architecture facts the generation loop needs. */
export interface DecoderConfig {
  architecture: 'llama';
  vocabSize: number;
  hiddenSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  /** Longest prompt plus completion, in tokens. */
  maxContext: number;
  bosTokenId?: number;
  eosTokenIds: number[];
  padTokenId?: number;
  /**
   * `generic`: the Hugging Face / Optimum decoder layout — inputs `input_ids`, `attention_mask`,
   * `position_ids`, `past_key_values.N.key|value` [batch, kvHeads, past, headDim]; outputs `logits`,
   * `present.N.key|value`. `contrib`: a graph Nucleus built with ORT contrib ops (GroupQueryAttention
   * over a shared KV buffer, RotaryEmbedding …); its I/O is described by `contribIo`.
   */
  graphStyle: 'generic' | 'contrib';
  /** Element type of the KV cache tensors. */
  kvDtype: 'float32' | 'float16';
  /** Set when `graphStyle` is `contrib`: the names and rules of its I/O. */
  contribIo?: ContribIo;
}

/**
 * I/O of a `contrib` graph (GroupQueryAttention). Rows are right-padded: row b's cache holds its tokens at indices
 * 0..seqlens_k[b], and a decode step writes its token at index seqlens_k[b]. Feeds: `input_ids` int64 [batch, seq],
 * `positionIds` int64 [batch, seq] (each token's index in its row), `seqlensK` int32 [batch] (row's past + new − 1),
 * `totalSequenceLength` int32 scalar (longest row's past + new), past KV float32 [batch, kvHeads, P, headDim].
 * Fetches: `logits` [batch, seq, vocab], present KV [batch, kvHeads, max(P, total), headDim].
 */
export interface ContribIo {
  positionIds: string;
  seqlensK: string;
  totalSequenceLength: string;
  /** Name patterns, `%d` = layer index. */
  pastKey: string;
  pastValue: string;
  presentKey: string;
  presentValue: string;
  /**
   * Outputs holding only the step's new K (after RoPE) and V, `[batch, seq, kvHeads × headDim]`, where the graph has
   * them: a runner keeping the cache itself appends these to its buffers and fetches no present.
   */
  newKey?: string;
  newValue?: string;
  padding: 'right';
  /** Feeding a buffer as past and pre-allocating the same tensor as its present fetch makes ORT update it in place (present length = max(P, total)). */
  sharedBuffer: boolean;
  /** A step with seq > 1 and a non-empty past must be batch 1 (a prompt step of several rows starts from an empty past). */
  multiTokenStepNeedsBatch1: boolean;
}

/**
 * Plain data a tokenizer is rebuilt from, so it can cross into a worker thread. The first three kinds are the
 * tokenizers of `@nucleus/sdk/llm`; `module` names an ES module of a format's own whose default export is a
 * {@link TokenizerFactory}, called with `options` inside the worker.
 */
export type TokenizerSpec =
  | {
      kind: 'hf';
      tokenizerJson: unknown;
      tokenizerConfig: unknown /** From config.json / generation_config.json, which win over tokenizer_config.json. */;
      bosTokenId?: number;
      eosTokenIds?: number[];
    }
  | {
      kind: 'sentencepiece';
      pieces: string[];
      scores: number[];
      types: number[];
      bosTokenId?: number;
      eosTokenIds: number[];
      unkTokenId?: number;
      addDummyPrefix: boolean;
      byteFallback: boolean;
      /** Whether BOS goes first (GGUF add_bos_token); default true. */
      addBos?: boolean;
      /** What stands for a space in pieces; default U+2581. */
      spaceChar?: string;
      /** Whether special tokens' text in a prompt becomes their ids; default true. */
      parseSpecial?: boolean;
      /** Whether EOS goes last (GGUF add_eos_token); default false. */
      addEos?: boolean;
      /** Ids whose surrounding whitespace is dropped when they are cut out of the text (llama.cpp's per-model attributes). */
      lstrip?: number[];
      rstrip?: number[];
    }
  | {
      kind: 'gpt2-bpe';
      pieces: string[];
      merges: string[];
      types: number[];
      bosTokenId?: number;
      eosTokenIds: number[] /** Pre-tokenizer (GGUF tokenizer.ggml.pre, a key of BPE_PRE_TOKENIZERS); default GPT-2's. */;
      pre?: string /** Whether BOS goes first; default true. */;
      addBos?: boolean;
      /** Whether EOS goes last (GGUF add_eos_token); default false. */
      addEos?: boolean;
      /** Ids whose surrounding whitespace is dropped when they are cut out of the text. */
      lstrip?: number[];
      rstrip?: number[];
    }
  | {
      kind: 'module' /** URL of an ES module whose default export is a {@link TokenizerFactory}. */;
      module: string;
      options: unknown;
    };

/** Builds a tokenizer from a {@link TokenizerSpec}'s `options`; the default export of a `module` tokenizer. */
export type TokenizerFactory = (options: unknown) => LlmTokenizer;

/** Text ↔ token ids. */
export interface LlmTokenizer {
  readonly vocabSize: number;
  readonly bosTokenId?: number;
  readonly eosTokenIds: readonly number[];
  /**
   * Token ids of `text`. `addBos` adds the model's special tokens (BOS first, EOS last where the model says so);
   * `parseSpecial` (default true) turns the written form of control tokens into those tokens.
   */
  encode(text: string, options?: { addBos?: boolean; parseSpecial?: boolean }): number[];
  /** Text of `ids`; special tokens (BOS, EOS …) are left out unless `keepSpecial`. */
  decode(ids: readonly number[], options?: { keepSpecial?: boolean }): string;
  /**
   * An incremental decoder that only ever emits whole UTF-8 characters. `prefix`: the ids before the first pushed
   * one (the prompt), so text continues correctly (a SentencePiece leading space is dropped only at the very start);
   * `keepSpecial`: emit special tokens' text too.
   */
  createStreamDecoder(options?: { prefix?: readonly number[]; keepSpecial?: boolean }): {
    push(id: number): string;
    flush(): string;
  };
  /** The bytes of one token as llama.cpp's `llama_token_to_piece` gives them (a leading space kept), where known. */
  pieceBytes?(id: number, special?: boolean): Uint8Array;
}

/** A loaded decoder model, ready to be opened by a generation worker. */
export interface LoadedLlm {
  name: string;
  /** The format that loaded it (`ModelFormat.name`). */
  source: string;
  config: DecoderConfig;
  /** The ONNX decoder the worker opens (for GGUF and llama2.c, generated into the model cache). */
  onnxPath: string;
  tokenizer: TokenizerSpec;
  /** Jinja chat template, when the model has one. */
  chatTemplate?: string;
  /**
   * The `models[].quantize` the format applied itself while building the graph from float weights (`int8`, `int4`):
   * the engine then applies no `modelTransform` of that name on top.
   */
  quantized?: string;
}
