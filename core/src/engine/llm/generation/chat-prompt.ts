import { Template } from '@huggingface/jinja';
import { badRequest, type ChatMessage } from '@nucleus/sdk';
import { templateRendersTools, templateToolCalls, type LlmTokenizer } from '@nucleus/sdk/llm';
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
  const rendersTools = templateRendersTools(template);
  const refuseTools = () =>
    badRequest(
      'tools_unsupported',
      "this model's chat template cannot render tools (it never reads a 'tools' list); send the request without tools, " +
        "with tool_choice 'none', or serve the model with a chat template that supports tools (models[].chatTemplate)",
      'tools',
    );
  const usesTools = (messages: readonly ChatMessage[]) =>
    messages.some((m) => m.toolCalls !== undefined || m.toolCallId !== undefined);
  if (template === undefined)
    return (messages, addGenerationPrompt, tools) => {
      if (tools !== undefined || usesTools(messages)) throw refuseTools();
      return fallbackChatPrompt(messages, { addGenerationPrompt, bosToken, eosToken });
    };
  const compiled = new Template(template);
  return (messages, addGenerationPrompt, tools) => {
    if (tools !== undefined && !rendersTools) throw refuseTools();
    try {
      return compiled.render({
        messages: messages.map(templateMessage),
        add_generation_prompt: addGenerationPrompt,
        bos_token: bosToken,
        eos_token: eosToken,
        ...(tools !== undefined && { tools }),
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

// A message as Hugging Face templates read it: `tool_calls` with object arguments, `tool_call_id` on tool results.
function templateMessage(m: ChatMessage): Record<string, unknown> {
  return {
    role: m.role,
    content: m.content,
    ...(m.name !== undefined && { name: m.name }),
    ...(m.toolCalls !== undefined && { tool_calls: templateToolCalls(m.toolCalls) }),
    ...(m.toolCallId !== undefined && { tool_call_id: m.toolCallId }),
  };
}
