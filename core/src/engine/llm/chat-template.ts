import { Template } from '@huggingface/jinja';

/** One chat message as templates see it (`content` may be structured for multimodal templates). */
export interface ChatTemplateMessage {
  role: string;
  content: unknown;
  [key: string]: unknown;
}

/** What `renderChatTemplate` passes to the template besides the messages. */
export interface ChatTemplateOptions {
  /** End with the opening of an assistant turn, so the model writes the reply. */
  addGenerationPrompt?: boolean;
  bosToken?: string;
  eosToken?: string;
  /** Further variables (`tools`, `date_string` …) some templates read. */
  extra?: Record<string, unknown>;
}

/** ChatML: the template used when a model brings none (llama.cpp's default too). */
export const DEFAULT_CHAT_TEMPLATE =
  "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}" +
  "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

const compiled = new Map<string, Template>();

/** Renders a Hugging Face (jinja) chat template over `messages`; `raise_exception` and `strftime_now` are there as in transformers. */
export function renderChatTemplate(
  template: string | undefined,
  messages: readonly ChatTemplateMessage[],
  options: ChatTemplateOptions = {},
): string {
  const source = template ?? DEFAULT_CHAT_TEMPLATE;
  let t = compiled.get(source);
  if (!t) {
    t = new Template(source);
    // Parsing is the slow part and a server renders the same few templates over and over.
    if (compiled.size > 32) compiled.clear();
    compiled.set(source, t);
  }
  return t.render({
    messages: messages as ChatTemplateMessage[],
    add_generation_prompt: options.addGenerationPrompt ?? false,
    bos_token: options.bosToken ?? '',
    eos_token: options.eosToken ?? '',
    ...(options.extra ?? {}),
  });
}
