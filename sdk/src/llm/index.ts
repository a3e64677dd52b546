// What a model format needs to hand a decoder LLM to the generation engine: the contract, a Llama graph builder,
// a cache for the graphs it generates, and the tokenizers formats share.
export type {
  ContribIo,
  DecoderConfig,
  LlmTokenizer,
  LoadedLlm,
  TokenizerFactory,
  TokenizerSpec,
} from './decoder-model.js';
export { UnsupportedModelError } from './unsupported-model-error.js';
export { runBuildWorker, serveBuildWorker } from './build-worker.js';
export { sha256File } from '../file-hash.js';
export { ensureGeneratedGraph, sha256FileCached } from './graph-cache.js';
export {
  buildLlamaGraph,
  builtDecoderConfig,
  CONTRIB_IO,
  LLAMA_GRAPH_OPSET,
  LLAMA_GRAPH_REVISION,
  type LlamaGraphOptions,
} from './llama-graph.js';
export { transposeMatrix, WeightNodes, type FusedPart, type WeightNodeOptions } from './llama-graph-weights.js';
export { earlyExit, ensureLlamaGraphOf, type LlamaGraphOfFileOptions } from './llama-graph-of-file.js';
export {
  checkLlamaWeights,
  type LlamaArchitecture,
  type LlamaLayerWeights,
  type LlamaWeights,
} from './llama-weights.js';
export {
  blocksPerRow,
  checkBlockQuantized,
  dequantizeMatrix,
  quantAt,
  sliceRows,
  type BlockMinima,
  type BlockQuantizedMatrix,
  type WeightMatrix,
} from './block-quantized.js';
export { quantizeMatrix, QUANTIZE_BLOCK_SIZE } from './quantize-matrix.js';
export { hfChatTemplate, hfTokenIds } from './hf-chat-template.js';
export { centreOffsets, MS_DOMAIN, quantizedGather, quantizedLinear } from './block-quantized-ops.js';
export { ggmlRopeTables, ropeTables, yarnCorrectionDims, type GgmlRopeScaling, type RopeLayout } from './rope.js';
export { createTokenizer, loadTokenizer } from './tokenizers/create-tokenizer.js';
export { HfTokenizer } from './tokenizers/hf-tokenizer.js';
export { SentencePieceTokenizer, type SentencePieceOptions } from './tokenizers/sentencepiece-tokenizer.js';
export { Gpt2BpeTokenizer, type Gpt2BpeOptions } from './tokenizers/gpt2-bpe-tokenizer.js';
export { BPE_PRE_TOKENIZERS, splitWords, type BpePreTokenizer } from './tokenizers/bpe-pre-tokenizers.js';
export {
  SpecialSplitter,
  specialTokensOf,
  type Fragment,
  type SpecialToken,
  type StripIds,
} from './tokenizers/special-splitter.js';
export {
  ByteStreamDecoder,
  WindowStreamDecoder,
  type StreamDecoder,
  type StreamDecoderOptions,
} from './tokenizers/stream-decoder.js';
export { BYTE_TO_CHAR, fromByteLevel, GPT2_SPLIT, toByteLevel } from './tokenizers/byte-level.js';
export { byteOfPiece, TokenType } from './tokenizers/token-types.js';
export {
  answerOf,
  chatOutputOf,
  checkOutputSchema,
  toolChoiceOf,
  type ChatOutput,
  type ChatOutputRequest,
  type ToolChoiceField,
} from './chat-output.js';
export { compileJsonSchema, JsonMatcher, type JsonNode, type JsonProperty } from './json-grammar.js';
export {
  parseToolCalls,
  templateRendersTools,
  templateToolCalls,
  ToolCallStream,
  toolCallSchema,
  type ParsedAnswer,
  type ParsedToolCall,
  type ToolChoice,
  type ToolStreamDelta,
} from './tool-calls.js';
