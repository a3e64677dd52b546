// Decoder LLMs, the engine's side: graph-style choice and chat templates.
export { chooseGraphStyle, type GraphStyle, type GraphStyleChoice } from './graph-style.js';
export {
  renderChatTemplate,
  DEFAULT_CHAT_TEMPLATE,
  type ChatTemplateMessage,
  type ChatTemplateOptions,
} from './chat-template.js';
