import {
  badRequest,
  recordStreamedAnswer,
  tenancyOf,
  type ChatMessage,
  type FinishReason,
  type GenerateRequest,
  type GenerationService,
  type InferenceHookInput,
  type InferenceHooks,
  type RouteContext,
  type RouteContribution,
} from '@nucleus/sdk';
import { answerOf } from '@nucleus/sdk/llm';
import { disconnectSignal } from './disconnect-signal.js';
import { addressOf } from './model-names.js';
import { NdjsonStream } from './ndjson-stream.js';
import { ollamaOutputOf, ollamaToolCall, ToolCallLines, type OllamaOutputFields } from './ollama-output.js';
import { CHAT_SCHEMA, GENERATE_SCHEMA, validator } from './ollama-schemas.js';

/** `options` of a generation request, as Ollama names them. */
export interface OllamaOptions {
  temperature?: number;
  top_p?: number;
  top_k?: number;
  seed?: number;
  num_predict?: number;
  stop?: string | string[];
  repeat_penalty?: number;
  presence_penalty?: number;
  frequency_penalty?: number;
  [loadTime: string]: unknown;
}

interface GenerationBody extends OllamaOutputFields {
  model: string;
  stream?: boolean;
  options?: OllamaOptions;
  keep_alive?: string | number;
  [field: string]: unknown;
}

/** `POST /api/generate` body. */
export interface OllamaGenerateBody extends GenerationBody {
  prompt?: string;
  suffix?: string;
  system?: string;
  template?: string;
  context?: number[];
  raw?: boolean;
  images?: string[];
}

/** A chat turn as Ollama sends it: an assistant turn's calls, a tool turn's function name. */
export interface OllamaMessage {
  role: string;
  content?: string;
  images?: string[];
  tool_calls?: { function: { name: string; arguments?: Record<string, unknown> } }[];
  tool_name?: string;
}

/** `POST /api/chat` body. */
export interface OllamaChatBody extends GenerationBody {
  messages?: OllamaMessage[];
}

/** What the routes need: the engine (looked up per request: a server without one answers 503) and the hooks. */
export interface OllamaDeps {
  generation(): GenerationService;
  hooks: InferenceHooks;
}

const checkGenerate = validator<OllamaGenerateBody>(GENERATE_SCHEMA);
const checkChat = validator<OllamaChatBody>(CHAT_SCHEMA);

/** Ollama's done reasons: a stop string ends a turn as the end-of-sequence token does. */
function doneReason(reason: FinishReason): 'stop' | 'length' {
  return reason === 'length' ? 'length' : 'stop';
}

/** Fields Ollama takes that change what is generated and that Nucleus does not do: refused with 400, not ignored. */
function refuseUnsupported(body: OllamaGenerateBody & OllamaChatBody, chat: boolean): void {
  const used = (v: unknown) => (Array.isArray(v) ? v.length > 0 : v !== undefined && v !== '' && v !== null);
  if (used(body.template))
    throw badRequest(
      'unsupported_field',
      "template (a Go template) is not supported: send raw: true with the prompt formatted as the model expects, or use /api/chat, which applies the model's own chat template",
      'template',
    );
  if (used(body.suffix))
    throw badRequest('unsupported_field', 'suffix (fill-in-the-middle) is not supported', 'suffix');
  if (used(body.context))
    throw badRequest(
      'unsupported_field',
      'context (token ids of an earlier answer) is not supported: send the conversation to /api/chat instead',
      'context',
    );
  if (!chat && (used(body.tools) || used(body.tool_choice)))
    throw badRequest('unsupported_field', 'tools are taken on /api/chat, not on /api/generate', 'tools');
  if (used(body.images) || body.messages?.some((m) => used(m.images)))
    throw badRequest('unsupported_field', 'images are not supported: the models served here take text only', 'images');
}

/** The engine's sampling options from Ollama's `options`; a negative `num_predict` (-1, -2) means no limit but the context. */
export function samplingOf(options: OllamaOptions = {}): Partial<GenerateRequest> {
  const out: Partial<GenerateRequest> = {};
  if (options.temperature !== undefined) out.temperature = options.temperature;
  if (options.top_p !== undefined) out.topP = options.top_p;
  if (options.top_k !== undefined) out.topK = options.top_k;
  if (options.seed !== undefined) out.seed = options.seed;
  if (options.num_predict !== undefined && options.num_predict > 0) out.maxTokens = options.num_predict;
  if (options.stop !== undefined) out.stop = typeof options.stop === 'string' ? [options.stop] : options.stop;
  if (options.repeat_penalty !== undefined) out.repetitionPenalty = options.repeat_penalty;
  if (options.presence_penalty !== undefined) out.presencePenalty = options.presence_penalty;
  if (options.frequency_penalty !== undefined) out.frequencyPenalty = options.frequency_penalty;
  return out;
}

/**
 * `/api/generate` (a prompt) and `/api/chat` (messages), streamed as NDJSON by default and answered whole with
 * `stream: false`, with Ollama's fields: `response` or `message`, `done`, `done_reason` and the counts and durations
 * (nanoseconds). `load_duration` is the time until the engine admitted the request (a cold model's start, the
 * queue), `prompt_eval_duration` until the first token, `eval_duration` the rest. A request with no prompt (or no
 * messages) only loads the model, as Ollama's does.
 */
export function generateRoutes(deps: OllamaDeps): RouteContribution[] {
  const route = <B extends GenerationBody>(
    check: (body: unknown) => B,
    chat: boolean,
  ): RouteContribution['handler'] => {
    return async (ctx) => {
      const started = process.hrtime.bigint();
      const body = check((ctx.request as { body?: unknown }).body);
      refuseUnsupported(body, chat);
      const service = deps.generation();
      const address = addressOf(service, body.model);
      const input: InferenceHookInput = {
        ...address,
        body: body as Record<string, unknown>,
      };
      const run = (routed: InferenceHookInput, stream: boolean) =>
        answer(ctx, deps, { ...(routed.body as B), model: body.model }, routed, chat, stream, started);
      return deps.hooks.run(input, ctx.headers, (routed) => run(routed, body.stream !== false), ctx, {
        unstreamed: (routed) => run(routed, false),
      });
    };
  };
  return [
    { method: 'POST', path: '/api/generate', handler: route(checkGenerate, false) },
    { method: 'POST', path: '/api/chat', handler: route(checkChat, true) },
  ];
}

async function answer(
  ctx: RouteContext,
  deps: OllamaDeps,
  body: OllamaGenerateBody & OllamaChatBody,
  routed: InferenceHookInput,
  chat: boolean,
  streamed: boolean,
  started: bigint,
): Promise<Record<string, unknown> | undefined> {
  const service = deps.generation();
  const info = service.get(routed.model, routed.version);
  const createdAt = () => new Date().toISOString();
  const said = (text: string) => (chat ? { message: { role: 'assistant', content: text } } : { response: text });
  const input = inputOf(body, chat, info.chatTemplate);
  const output = ollamaOutputOf(body);
  if (!input) {
    return { model: body.model, created_at: createdAt(), ...said(''), done: true, done_reason: 'load' };
  }
  const controller = new AbortController();
  const signal = streamed ? controller.signal : disconnectSignal(ctx);
  const requestId = (ctx.state as { requestId?: string }).requestId ?? '';
  const request: GenerateRequest = {
    model: routed.model,
    ...(routed.version !== undefined && { version: routed.version }),
    ...input,
    ...(output.tools && { tools: output.tools }),
    ...(output.jsonSchema && { jsonSchema: output.jsonSchema }),
    ...samplingOf(body.options),
    ...tenancyOf(ctx),
    requestId,
    ...(!streamed && { buffered: true }),
  };
  // Admission happens before anything is written: a refused request still gets its own status code.
  const stream = await service.generate(request, signal);
  const admitted = process.hrtime.bigint();
  let firstToken: bigint | undefined;
  const stats = (reason: FinishReason, completionTokens: number) => {
    const now = process.hrtime.bigint();
    const first = firstToken ?? now;
    return {
      done: true,
      done_reason: doneReason(reason),
      total_duration: Number(now - started),
      load_duration: Number(admitted - started),
      prompt_eval_count: stream.promptTokens,
      prompt_eval_duration: Number(first - admitted),
      eval_count: completionTokens,
      eval_duration: Number(now - first),
    };
  };
  if (!streamed) {
    let text = '';
    let finish: { reason: FinishReason; tokens: number } = { reason: 'stop', tokens: 0 };
    for await (const event of stream) {
      if (event.type === 'token') {
        firstToken ??= process.hrtime.bigint();
        text += event.text;
      } else if (event.type === 'finish') {
        text += event.text;
        finish = { reason: event.finishReason, tokens: event.completionTokens };
      }
    }
    const parsed = answerOf(output, text, finish.reason === 'stop');
    const calls = parsed.calls.map(ollamaToolCall);
    const reply = chat
      ? { message: { role: 'assistant', content: parsed.content, ...(calls.length > 0 && { tool_calls: calls }) } }
      : { response: parsed.content };
    return { model: body.model, created_at: createdAt(), ...reply, ...stats(finish.reason, finish.tokens) };
  }
  const out = NdjsonStream.open(ctx);
  out.signal.addEventListener('abort', () => controller.abort(), { once: true });
  // Each line is JSON.stringify of {model, created_at, response | message, done: false}, written out by hand.
  const head = `{"model":${JSON.stringify(body.model)},"created_at":"`;
  const line = chat
    ? (text: string) =>
        `${head}${createdAt()}","message":{"role":"assistant","content":${JSON.stringify(text)}},"done":false}`
    : (text: string) => `${head}${createdAt()}","response":${JSON.stringify(text)},"done":false}`;
  const calls = output.choice === 'none' ? undefined : new ToolCallLines(output.choice);
  const send = async (text: string, final = false) => {
    if (!calls) return text ? out.send(line(text)) : undefined;
    for (const piece of [...calls.push(text), ...(final ? calls.end() : [])])
      await out.send(
        'content' in piece
          ? line(piece.content)
          : {
              model: body.model,
              created_at: createdAt(),
              message: { role: 'assistant', content: '', tool_calls: piece.calls },
              done: false,
            },
      );
  };
  let all = '';
  try {
    for await (const event of stream) {
      if (out.closed) break;
      if (event.type === 'token') {
        firstToken ??= process.hrtime.bigint();
        all += event.text;
        await send(event.text);
      } else if (event.type === 'finish') {
        all += event.text;
        // A complete constrained output is checked before its end is sent.
        if (event.finishReason === 'stop' && output.validate) answerOf(output, all, true);
        await send(event.text, true);
        await out.send({
          model: body.model,
          created_at: createdAt(),
          ...said(''),
          ...stats(event.finishReason, event.completionTokens),
        });
      }
    }
    if (!out.closed) recordStreamedAnswer(ctx.state, chat ? { message: { content: all } } : { response: all });
  } catch (err) {
    await out.error(err);
  } finally {
    out.end();
  }
  return undefined;
}

/**
 * What the engine generates from: `/api/chat`'s messages through the model's chat template; `/api/generate`'s prompt
 * as a user turn (after `system`) through the template where the model has one, or as it is with `raw: true` or a
 * model without a template (`system` then goes before it, on its own line). Undefined: nothing to generate from.
 */
function inputOf(
  body: OllamaGenerateBody & OllamaChatBody,
  chat: boolean,
  hasTemplate: boolean,
): Pick<GenerateRequest, 'prompt' | 'messages'> | undefined {
  if (chat) {
    if (!body.messages || body.messages.length === 0) return undefined;
    return { messages: body.messages.map(chatMessageOf) };
  }
  if (!body.prompt) return undefined;
  if (body.raw || !hasTemplate) return { prompt: body.system ? `${body.system}\n${body.prompt}` : body.prompt };
  return {
    messages: [
      ...(body.system ? [{ role: 'system', content: body.system }] : []),
      { role: 'user', content: body.prompt },
    ],
  };
}

// Ollama's calls carry no id; the template sees each with one, and a tool turn's function name as its name.
function chatMessageOf(m: OllamaMessage, turn: number): ChatMessage {
  return {
    role: m.role,
    content: m.content ?? '',
    ...(m.tool_calls !== undefined &&
      m.tool_calls.length > 0 && {
        toolCalls: m.tool_calls.map((c, i) => ({
          id: `call_${turn}_${i}`,
          name: c.function.name,
          arguments: JSON.stringify(c.function.arguments ?? {}),
        })),
      }),
    ...(m.tool_name !== undefined && { name: m.tool_name }),
  };
}
