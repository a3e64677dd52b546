// Decoder LLMs: the contract with the generation engine, model formats, graph construction and tokenizers.
export type { DecoderConfig, LlmTokenizer, LoadedLlm, TokenizerSpec } from './llm-model.js';
export { loadLlm, loadTinyLlama, type LoadLlmOptions } from './load-llm.js';
export { loadOnnxFolder } from './formats/onnx-folder.js';
export { UnsupportedModelError } from './formats/unsupported-model-error.js';
export { buildLlamaGraph, LLAMA_GRAPH_OPSET, transposeMatrix, type LlamaGraphOptions } from './graph/llama-graph.js';
export { checkLlamaWeights, type LlamaArchitecture, type LlamaLayerWeights, type LlamaWeights } from './graph/llama-weights.js';
export { ropeTables, type RopeLayout } from './graph/rope.js';
export { createTokenizer } from './tokenizers/create-tokenizer.js';
export { ByteStreamDecoder, WindowStreamDecoder, type StreamDecoder } from './tokenizers/stream-decoder.js';
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
