import { Template } from '@huggingface/jinja';
import { badRequest, type ChatMessage } from '@nucleus/sdk';
import type { LlmTokenizer } from '@nucleus/sdk/llm';
import type { ChatRenderer } from './prompt-builder.js';

/** What a chat template is rendered with besides the messages. */
export interface ChatPromptOptions {
  addGenerationPrompt: boolean;
  bosToken?: string;
  eosToken?: string;
}

/**
 * The prompt text of a chat for a model without a chat template of its own: ChatML-style turns, which every
 * tokenizer can encode as plain text.
 */
export function fallbackChatPrompt(messages: readonly ChatMessage[], options: ChatPromptOptions): string {
  let text = options.bosToken ?? '';
  for (const m of messages) text += `<|im_start|>${m.role}\n${m.content}<|im_end|>\n`;
  if (options.addGenerationPrompt) text += '<|im_start|>assistant\n';
  return text;
}

/**
 * A renderer for one model: its Jinja chat template when it has one (with `bos_token` and `eos_token`; the
 * template engine brings `raise_exception`), else {@link fallbackChatPrompt}. A template that raises or
 * fails is a 400: the messages do not fit the model's chat format.
 */
export function chatRenderer(template: string | undefined, tokenizer: LlmTokenizer): ChatRenderer {
  const special = (id: number | undefined): string =>
    id === undefined ? '' : tokenizer.decode([id], { keepSpecial: true });
  const bosToken = special(tokenizer.bosTokenId);
  const eosToken = special(tokenizer.eosTokenIds[0]);
  if (template === undefined)
    return (messages, addGenerationPrompt) => fallbackChatPrompt(messages, { addGenerationPrompt, bosToken, eosToken });
  const compiled = new Template(template);
  return (messages, addGenerationPrompt) => {
    try {
      return compiled.render({
        messages,
        add_generation_prompt: addGenerationPrompt,
        bos_token: bosToken,
        eos_token: eosToken,
      });
    } catch (err) {
      throw badRequest(
        'invalid_messages',
        `the model's chat template rejected the messages: ${err instanceof Error ? err.message : String(err)}`,
        'messages',
      );
    }
  };
}
