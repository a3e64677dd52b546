import { badRequest, type ChatMessage, type ToolDefinition } from '@nucleus/sdk';
import type { LlmTokenizer } from '@nucleus/sdk/llm';
import type { WireGenerateRequest } from './generation-messages.js';

/** Renders chat messages into prompt text (the model's template, or a fallback format). */
export type ChatRenderer = (
  messages: readonly ChatMessage[],
  addGenerationPrompt: boolean,
  tools?: readonly ToolDefinition[],
) => string;

/** A prompt ready for prefill and the completion budget it leaves. */
export interface BuiltPrompt {
  ids: number[];
  /** The completion limit per choice: the request's, or all the context window leaves. */
  maxTokens: number;
}

/**
 * Turns a request's prompt or messages into token ids and checks them against the context window, so that a
 * request that cannot fit is answered 400 with the limit before anything is generated.
 */
export function buildPrompt(
  request: WireGenerateRequest,
  tokenizer: LlmTokenizer,
  renderChat: ChatRenderer,
  maxContext: number,
): BuiltPrompt {
  let ids: number[];
  let where = 'prompt';
  if (request.messages !== undefined) {
    where = 'messages';
    // A rendered template spells out its own special tokens (BOS included); encoding must not add another.
    ids = tokenizer.encode(renderChat(request.messages, request.addGenerationPrompt, request.tools), { addBos: false });
  } else if (typeof request.prompt === 'string') {
    ids = tokenizer.encode(request.prompt, { addBos: true });
  } else if (Array.isArray(request.prompt)) {
    ids = request.prompt;
    const bad = ids.find((id) => !Number.isInteger(id) || id < 0 || id >= tokenizer.vocabSize);
    if (bad !== undefined)
      throw badRequest(
        'invalid_token_id',
        `prompt token id ${bad} is outside the vocabulary (0 to ${tokenizer.vocabSize - 1})`,
        'prompt',
      );
  } else {
    throw badRequest('missing_prompt', 'the request needs a prompt or messages', 'prompt');
  }
  if (ids.length === 0) throw badRequest('empty_prompt', `the ${where} encodes to no tokens; send some text`, where);
  const limit = maxContext;
  if (request.maxTokens !== undefined) {
    if (ids.length + request.maxTokens > limit) {
      throw badRequest(
        'context_length_exceeded',
        `This model's maximum context length is ${limit} tokens. However, you requested ${ids.length + request.maxTokens} tokens ` +
          `(${ids.length} in the ${where}, ${request.maxTokens} for the completion). Please reduce the length of the ${where} or max_tokens.`,
        'max_tokens',
      );
    }
    return { ids, maxTokens: request.maxTokens };
  }
  if (ids.length >= limit) {
    throw badRequest(
      'context_length_exceeded',
      `This model's maximum context length is ${limit} tokens. However, your ${where} has ${ids.length} tokens, which leaves no room for a completion. Please reduce the length of the ${where}.`,
      where,
    );
  }
  return { ids, maxTokens: limit - ids.length };
}
