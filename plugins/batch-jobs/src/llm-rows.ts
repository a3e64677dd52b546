import { randomUUID } from 'node:crypto';
import {
  badRequest,
  type ChatMessage,
  type GenerateRequest,
  type GenerationService,
  type FinishReason,
} from '@nucleus/sdk';
import { errorOf, whenReady, type RowExecutor } from './row-executor.js';
import type { InputRow } from './row-source.js';
import { errorLine } from './tensor-rows.js';

/** The endpoints a row of an LLM job may address, as the OpenAI Batch API names them. */
export const BATCH_ENDPOINTS = ['/v1/chat/completions', '/v1/completions', '/v1/embeddings'] as const;
export type BatchEndpoint = (typeof BATCH_ENDPOINTS)[number];

/**
 * Runs rows of an LLM job one generation each, at low priority, several in flight. A row is an OpenAI Batch API line
 * (`{"custom_id", "method", "url", "body"}`) or a bare request body: `messages` for a chat completion, `prompt` for a
 * completion, `input` for embeddings. Its line holds the OpenAI response body: `{"row", "custom_id"?, "response"}`.
 */
export class LlmRowExecutor implements RowExecutor {
  readonly chunkRows = 1;

  constructor(
    private readonly generation: GenerationService,
    /** Every row runs on this model (the CLI's `--model`); otherwise each body names its own. */
    private readonly model: string | undefined,
    /** Rows must address this endpoint (a server job's `endpoint`); otherwise the body's fields say which. */
    private readonly endpoint?: BatchEndpoint,
  ) {}

  async execute(rows: InputRow[]): Promise<string[]> {
    return Promise.all(rows.map((r) => this.#one(r)));
  }

  async #one(r: InputRow): Promise<string> {
    if ('error' in r) return errorLine(r.row, r.error);
    const line = (typeof r.value === 'object' && r.value !== null ? r.value : {}) as Record<string, unknown>;
    const wrapped = typeof line.body === 'object' && line.body !== null;
    const customId = typeof line.custom_id === 'string' ? line.custom_id : undefined;
    const id = customId === undefined ? '' : `,"custom_id":${JSON.stringify(customId)}`;
    try {
      const body = (wrapped ? line.body : line) as Record<string, unknown>;
      const url = wrapped ? line.url : undefined;
      const endpoint = this.#endpointOf(body, url);
      const response = await this.#run(endpoint, body);
      return `{"row":${r.row}${id},"response":${JSON.stringify(response)}}`;
    } catch (err) {
      return `{"row":${r.row},"error":${JSON.stringify(errorOf(err))}${id}}`;
    }
  }

  #endpointOf(body: Record<string, unknown>, url: unknown): BatchEndpoint {
    const asked = typeof url === 'string' ? url : undefined;
    if (asked !== undefined && !(BATCH_ENDPOINTS as readonly string[]).includes(asked))
      throw badRequest('invalid_url', `url ${asked} is not one of ${BATCH_ENDPOINTS.join(', ')}`);
    if (this.endpoint !== undefined && asked !== undefined && asked !== this.endpoint)
      throw badRequest('invalid_url', `url ${asked} differs from the batch's endpoint ${this.endpoint}`);
    const endpoint =
      (asked as BatchEndpoint | undefined) ??
      this.endpoint ??
      (body.messages !== undefined
        ? '/v1/chat/completions'
        : body.input !== undefined
          ? '/v1/embeddings'
          : '/v1/completions');
    return endpoint;
  }

  async #run(endpoint: BatchEndpoint, body: Record<string, unknown>): Promise<Record<string, unknown>> {
    const model = this.model ?? body.model;
    if (typeof model !== 'string' || model === '') throw badRequest('invalid_request', 'the body names no model');
    const signal = new AbortController().signal;
    if (endpoint === '/v1/embeddings') {
      const input = body.input as string | string[];
      if (typeof input !== 'string' && !(Array.isArray(input) && input.every((x) => typeof x === 'string')))
        throw badRequest('invalid_request', 'input is a string or a list of strings');
      const result = await whenReady(() => this.generation.embed({ model, input }), signal);
      return {
        object: 'list',
        model,
        data: result.embeddings.map((e, index) => ({ object: 'embedding', index, embedding: Array.from(e) })),
        usage: { prompt_tokens: result.promptTokens, total_tokens: result.promptTokens },
      };
    }
    const chat = endpoint === '/v1/chat/completions';
    const request: GenerateRequest = { model, ...sampling(body), priority: 'low', buffered: true };
    if (chat) request.messages = messages(body.messages);
    else if (typeof body.prompt === 'string') request.prompt = body.prompt;
    else throw badRequest('invalid_request', 'prompt is a string');
    const stream = await whenReady(() => this.generation.generate(request), signal);
    const texts: string[] = [];
    const reasons: FinishReason[] = [];
    let usage = { promptTokens: stream.promptTokens, completionTokens: 0, totalTokens: stream.promptTokens };
    for await (const event of stream) {
      if (event.type === 'token') texts[event.index] = (texts[event.index] ?? '') + event.text;
      else if (event.type === 'finish') {
        texts[event.index] = (texts[event.index] ?? '') + event.text;
        reasons[event.index] = event.finishReason;
      } else usage = event.usage;
    }
    const finish = (i: number) => (reasons[i] === 'length' ? 'length' : 'stop');
    return {
      id: `${chat ? 'chatcmpl' : 'cmpl'}-${randomUUID()}`,
      object: chat ? 'chat.completion' : 'text_completion',
      created: stream.created,
      model,
      choices: texts.map((text, index) =>
        chat
          ? { index, message: { role: 'assistant', content: text }, finish_reason: finish(index), logprobs: null }
          : { index, text, finish_reason: finish(index), logprobs: null },
      ),
      usage: {
        prompt_tokens: usage.promptTokens,
        completion_tokens: usage.completionTokens,
        total_tokens: usage.totalTokens,
      },
    };
  }
}

function sampling(body: Record<string, unknown>): Partial<GenerateRequest> {
  const num = (v: unknown) => (typeof v === 'number' ? v : undefined);
  const out: Partial<GenerateRequest> = {};
  const set = <K extends keyof GenerateRequest>(k: K, v: GenerateRequest[K] | undefined) => {
    if (v !== undefined) out[k] = v;
  };
  set('temperature', num(body.temperature));
  set('topP', num(body.top_p));
  set('seed', num(body.seed));
  set('maxTokens', num(body.max_completion_tokens) ?? num(body.max_tokens));
  set('presencePenalty', num(body.presence_penalty));
  set('frequencyPenalty', num(body.frequency_penalty));
  set('n', num(body.n));
  const stop = body.stop;
  set('stop', typeof stop === 'string' ? [stop] : Array.isArray(stop) ? (stop as string[]) : undefined);
  return out;
}

// OpenAI content may be a list of parts: the text parts, joined.
function messages(value: unknown): ChatMessage[] {
  if (!Array.isArray(value) || value.length === 0) throw badRequest('invalid_request', 'messages is a non-empty list');
  return value.map((m: { role?: unknown; content?: unknown }) => {
    const content = Array.isArray(m.content)
      ? (m.content as { type?: string; text?: string }[])
          .filter((p) => p.type === 'text')
          .map((p) => p.text ?? '')
          .join('')
      : m.content;
    if (typeof m.role !== 'string' || typeof content !== 'string')
      throw badRequest('invalid_request', 'each message has a role and a text content');
    return { role: m.role, content };
  });
}
