// Decoder LLMs: the contract with the generation engine, model formats, graph construction and tokenizers.
export type { ContribIo, DecoderConfig, LlmTokenizer, LoadedLlm, TokenizerSpec } from './llm-model.js';
export { loadLlm, loadTinyLlama, type LoadLlmOptions } from './load-llm.js';
export { chooseGraphStyle, type GraphStyle, type GraphStyleChoice } from './graph-style.js';
export { renderChatTemplate, DEFAULT_CHAT_TEMPLATE, type ChatTemplateMessage, type ChatTemplateOptions } from './chat-template.js';
export { loadOnnxFolder, checkGenericLayout } from './formats/onnx-folder.js';
export { loadGguf, inspectGguf, readGgufWeights, type GgufLlama, type LoadGgufOptions } from './formats/gguf/load-gguf.js';
export {
  GGML_READABLE_TYPES,
  GGML_TYPE_NAMES,
  GgufFormatError,
  GgufValueType,
  ggmlTypeName,
  readGguf,
  readTensorF32,
  type GgufFile,
  type GgufTensorInfo,
  type GgufValue,
} from './formats/gguf/gguf-reader.js';
export { loadLlama2c, llama2cWeights, readLlama2cHeader, readLlama2cTokenizer, type Llama2cHeader, type LoadLlama2cOptions } from './formats/llama2c/load-llama2c.js';
export { ensureGeneratedGraph, sha256File, sha256FileCached } from './formats/graph-cache.js';
export { UnsupportedModelError } from './formats/unsupported-model-error.js';
export { buildLlamaGraph, builtDecoderConfig, CONTRIB_IO, LLAMA_GRAPH_OPSET, LLAMA_GRAPH_REVISION, transposeMatrix, type LlamaGraphOptions } from './graph/llama-graph.js';
export { checkLlamaWeights, type LlamaArchitecture, type LlamaLayerWeights, type LlamaWeights } from './graph/llama-weights.js';
export { ropeTables, type RopeLayout } from './graph/rope.js';
export { createTokenizer } from './tokenizers/create-tokenizer.js';
export { HfTokenizer } from './tokenizers/hf-tokenizer.js';
export { SentencePieceTokenizer, type SentencePieceOptions } from './tokenizers/sentencepiece-tokenizer.js';
export { Gpt2BpeTokenizer, BPE_PRE_TOKENIZERS, type Gpt2BpeOptions } from './tokenizers/gpt2-bpe-tokenizer.js';
export { ByteStreamDecoder, WindowStreamDecoder, type StreamDecoder, type StreamDecoderOptions } from './tokenizers/stream-decoder.js';
export { TokenType } from './tokenizers/token-types.js';
export {
  buildTinyLlamaFiles,
  ensureTinyLlama,
  tinyLlamaConfigJson,
  tinyLlamaTokenizer,
  tinyLlamaWeights,
  TINY_LLAMA_ARCH,
  TINY_LLAMA_CHAT_TEMPLATE,
  TINY_LLAMA_NAME,
  TINY_LLAMA_REVISION,
  TINY_LLAMA_SPECIAL_TOKENS,
} from './tiny-llama.js';
