// Decoder LLMs, the engine's side: graph-style choice, chat templates, and the built-in tiny Llama.
export { chooseGraphStyle, type GraphStyle, type GraphStyleChoice } from './graph-style.js';
export {
  renderChatTemplate,
  DEFAULT_CHAT_TEMPLATE,
  type ChatTemplateMessage,
  type ChatTemplateOptions,
} from './chat-template.js';
export {
  buildTinyLlamaFiles,
  ensureTinyLlama,
  tinyLlamaConfigJson,
  tinyLlamaContrib,
  tinyLlamaTokenizer,
  tinyLlamaWeights,
  TINY_LLAMA_ARCH,
  TINY_LLAMA_CHAT_TEMPLATE,
  TINY_LLAMA_NAME,
  TINY_LLAMA_REVISION,
  TINY_LLAMA_SPECIAL_TOKENS,
} from './tiny-llama.js';
