import {
  badRequest,
  type EventBus,
  type GenerateRequest,
  type GenerationService,
  type GenerationStream,
  type GenerationUsage,
  type InferenceHooks,
  type RouteContext,
  type RouteContribution,
} from '@nucleus/sdk';
import { chatLogprobs, chatLogprobsOf, countOf, legacyLogprobs } from './logprobs-mapping.js';
import { mergeStreams } from './merge-streams.js';
import type { TokenLogprobs } from '@nucleus/sdk';
import {
  addressOf,
  chatMessagesOf,
  collect,
  deliveryReport,
  disconnectSignal,
  hooked,
  openAiFinishReason,
  refuseUnsupported,
  responseId,
  samplingOf,
  usageBody,
  type BodyMessage,
  type RouteAnswer,
  type SamplingBody,
} from './request-mapping.js';
import { CHAT_COMPLETION_SCHEMA, COMPLETION_SCHEMA, EMBEDDING_SCHEMA, validator } from './schemas.js';
import { recordStreamedAnswer, SseStream, tenancyOf } from '@nucleus/sdk';
import { ToolCallStream, type ToolStreamDelta } from '@nucleus/sdk/llm';
import { answerOf, chatOutputOf, toolCallId, type ChatOutput, type OutputFields } from './structured-output.js';

/** `POST /v1/chat/completions` body. */
export interface ChatCompletionBody extends SamplingBody, OutputFields {
  messages: BodyMessage[];
}

/** `POST /v1/completions` body. */
export interface CompletionBody extends SamplingBody {
  prompt: string | string[] | number[] | number[][];
  echo?: boolean | null;
}

/** `POST /v1/embeddings` body. */
export interface EmbeddingBody {
  model: string;
  input: string | string[] | number[] | number[][];
  encoding_format?: 'float' | 'base64' | null;
  dimensions?: number | null;
  pooling?: 'mean' | 'cls' | 'last' | null;
  normalize?: boolean | null;
}

const checkChat = validator<ChatCompletionBody>(CHAT_COMPLETION_SCHEMA);
// The API document's answers of a route that streams on request.
const STREAMABLE = {
  200: { description: 'the completion, or with `stream: true` a text/event-stream of chunks ending in `[DONE]`' },
};
const checkCompletion = validator<CompletionBody>(COMPLETION_SCHEMA);
const checkEmbedding = validator<EmbeddingBody>(EMBEDDING_SCHEMA);

/** What the routes need: the engine (looked up per request, so a kernel without one answers 503) and limits. */
export interface RouteDeps {
  generation(ctx: RouteContext): GenerationService;
  /** Where token delivery delays are reported (`generation.delivery`). */
  events: EventBus;
  maxPromptsPerRequest: number;
  /** The `preInference`/`postInference` hooks and the routers every inference request runs through. */
  hooks: InferenceHooks;
}

/** The OpenAI-compatible routes: models, completions, chat completions and embeddings, streamed as the official clients expect. */
export function openAiRoutes(deps: RouteDeps): RouteContribution[] {
  return [
    {
      method: 'GET',
      path: '/v1/models',
      doc: { summary: 'The LLMs and embedding models served (OpenAI model list)', tags: ['openai'] },
      handler: (ctx) => ({ object: 'list', data: listedModels(deps.generation(ctx)) }),
    },
    {
      method: 'GET',
      path: '/v1/models/:model',
      doc: { summary: 'One model', tags: ['openai'], params: { model: 'a model name, or name:version' } },
      handler: (ctx) => {
        const service = deps.generation(ctx);
        const { model, version } = addressOf(service, ctx.params.model!);
        const info = service.get(model, version);
        return modelObject(info, version === undefined ? undefined : `${info.name}:${version}`);
      },
    },
    {
      method: 'POST',
      path: '/v1/chat/completions',
      doc: {
        summary: 'Chat completion (OpenAI-compatible); `stream: true` answers with server-sent events',
        tags: ['openai'],
        body: CHAT_COMPLETION_SCHEMA,
        responses: STREAMABLE,
      },
      handler: (ctx) =>
        hooked(ctx, deps.hooks, checkChat, (body, v) => chatCompletions(ctx, deps, body, v), engineOf(ctx, deps)),
    },
    {
      method: 'POST',
      path: '/v1/completions',
      doc: {
        summary: 'Text completion (OpenAI-compatible); `stream: true` answers with server-sent events',
        tags: ['openai'],
        body: COMPLETION_SCHEMA,
        responses: STREAMABLE,
      },
      handler: (ctx) =>
        hooked(ctx, deps.hooks, checkCompletion, (body, v) => completions(ctx, deps, body, v), engineOf(ctx, deps)),
    },
    {
      method: 'POST',
      path: '/v1/embeddings',
      doc: {
        summary: 'Embeddings of one or more inputs (OpenAI-compatible)',
        tags: ['openai'],
        body: EMBEDDING_SCHEMA,
      },
      handler: (ctx) =>
        hooked(ctx, deps.hooks, checkEmbedding, (body, v) => embeddings(ctx, deps, body, v), engineOf(ctx, deps)),
    },
  ];
}

/**
 * The request's own queueing deadline from the `X-Request-Timeout-Ms` header (milliseconds): a request still waiting
 * for a running slot when it passes is answered 408, like one that outwaits `queue.timeoutMs`.
 */
function deadlineOf(ctx: RouteContext): { deadlineMs?: number } {
  const raw = ctx.get('x-request-timeout-ms');
  if (raw === '') return {};
  const ms = Number(raw);
  if (!Number.isFinite(ms) || ms <= 0)
    throw badRequest(
      'invalid_timeout',
      'the X-Request-Timeout-Ms header must be a positive number of milliseconds',
      'x-request-timeout-ms',
    );
  return { deadlineMs: ms };
}

/** The engine, for resolving `name:version`, looked up when the request runs. */
function engineOf(ctx: RouteContext, deps: RouteDeps): () => GenerationService {
  return () => deps.generation(ctx);
}

function modelObject(m: { name: string; created: number; maxContext: number; kind: string }, id = m.name) {
  return { id, object: 'model', created: m.created, owned_by: 'nucleus', max_model_len: m.maxContext };
}

/**
 * `/v1/models`: each name once (the id OpenAI clients send; routers split it between its versions), and for a name
 * served in several versions each version as `name:version` too, to address one version past the routers.
 */
function listedModels(service: GenerationService): ReturnType<typeof modelObject>[] {
  const all = service.listVersions?.() ?? [];
  return service.list().flatMap((m) => {
    const versions = all.filter((v) => v.name === m.name);
    const pinned = versions.length > 1 ? versions.map((v) => modelObject(v, `${v.name}:${v.version ?? '1'}`)) : [];
    return [modelObject(m), ...pinned];
  });
}

async function chatCompletions(
  ctx: RouteContext,
  deps: RouteDeps,
  body: ChatCompletionBody,
  version: string | undefined,
): Promise<RouteAnswer> {
  refuseUnsupported(body, ['tools', 'response_format']);
  const output = chatOutputOf(body);
  const signal = disconnectSignal(ctx);
  const requestId = (ctx.state as { requestId?: string }).requestId ?? '';
  const request: GenerateRequest = {
    model: body.model,
    ...(version !== undefined && { version }),
    messages: chatMessagesOf(body.messages),
    ...(output.tools && { tools: output.tools }),
    ...(output.jsonSchema && { jsonSchema: output.jsonSchema }),
    ...samplingOf(body),
    ...chatLogprobsOf(body),
    ...tenancyOf(ctx),
    requestId,
    ...deadlineOf(ctx),
  };
  const n = request.n ?? 1;
  const withLogprobs = request.logprobs !== undefined;
  // Admission happens before anything is written: a bad request still gets its own status code.
  const stream = await deps.generation(ctx).generate(request, signal);
  const id = responseId('chatcmpl');
  if (!body.stream) {
    const result = await collect(stream, n);
    return {
      id,
      object: 'chat.completion',
      created: stream.created,
      model: stream.model,
      choices: result.choices.map((c) => {
        const answer = answerOf(output, c.text, c.finishReason === 'stop');
        const calls = answer.calls.map((call) => ({
          id: toolCallId(),
          type: 'function',
          function: { name: call.name, arguments: call.arguments },
        }));
        return {
          index: c.index,
          message: {
            role: 'assistant',
            content: calls.length > 0 && answer.content === '' ? null : answer.content,
            ...(calls.length > 0 && { tool_calls: calls }),
          },
          logprobs: withLogprobs ? chatLogprobs(c.logprobs ?? []) : null,
          finish_reason: calls.length > 0 ? 'tool_calls' : openAiFinishReason(c.finishReason),
          stop_reason: c.stopSequence ?? null,
        };
      }),
      usage: usageBody(result.usage),
    };
  }
  const includeUsage = body.stream_options?.include_usage === true;
  const chunk = (choices: unknown[], usage?: GenerationUsage) => ({
    id,
    object: 'chat.completion.chunk',
    created: stream.created,
    model: stream.model,
    choices,
    ...(includeUsage && { usage: usage ? usageBody(usage) : null }),
  });
  const delta = (
    index: number,
    d: Record<string, unknown>,
    finish: string | null = null,
    stop?: string,
    lps?: TokenLogprobs[],
  ) => ({
    index,
    delta: d,
    logprobs: lps ? chatLogprobs(lps) : null,
    finish_reason: finish,
    ...(finish !== null && { stop_reason: stop ?? null }),
  });
  const sse = SseStream.open(ctx, deliveryReport(deps.events, stream.model, requestId));
  // A content chunk is JSON.stringify of chunk([delta(index, {content})]), written out by hand: only the choice's
  // index and its text change from one to the next.
  const contentHead = `{"id":${JSON.stringify(id)},"object":"chat.completion.chunk","created":${stream.created},"model":${JSON.stringify(stream.model)},"choices":[{"index":`;
  const contentTail = `,"logprobs":null,"finish_reason":null}]${includeUsage ? ',"usage":null' : ''}}`;
  // What each choice said in full, for a shadow copy's comparison once the stream has ended.
  const said = Array.from({ length: n }, () => '');
  const tools = output.choice === 'none' ? undefined : new ToolDeltas(output, n);
  // Log-probs of tokens that released no text yet, per choice: they go with the next chunk that has text.
  const pending = Array.from({ length: n }, (): TokenLogprobs[] => []);
  try {
    for (let i = 0; i < n; i++) await sse.send(chunk([delta(i, { role: 'assistant', content: '' })]));
    for await (const event of stream) {
      if (sse.closed) break;
      if (event.type !== 'done') said[event.index] += event.text;
      // A complete constrained output is checked before its end is sent.
      if (event.type === 'finish' && event.finishReason === 'stop' && output.validate)
        answerOf(output, said[event.index]!, true);
      if (tools && event.type !== 'done') {
        const deltas = tools.push(event.index, event.text);
        if (event.type === 'finish') deltas.push(...tools.end(event.index));
        for (const d of deltas) await sse.send(chunk([delta(event.index, d)]));
        if (event.type === 'finish') {
          const reason = tools.called(event.index) && event.finishReason === 'stop' ? 'tool_calls' : undefined;
          await sse.send(
            chunk([delta(event.index, {}, reason ?? openAiFinishReason(event.finishReason), event.stopSequence)]),
          );
        }
      } else if (event.type === 'token' && event.logprobs) {
        const lps = pending[event.index]!;
        lps.push(event.logprobs);
        if (event.text) {
          pending[event.index] = [];
          await sse.sendToken(
            chunk([delta(event.index, { content: event.text }, null, undefined, lps)]),
            event.sampledAt,
          );
        }
      } else if (event.type === 'token') {
        if (event.text)
          await sse.sendToken(
            `${contentHead}${event.index},"delta":{"content":${JSON.stringify(event.text)}}${contentTail}`,
            event.sampledAt,
          );
      } else if (event.type === 'finish') {
        const lps = pending[event.index]!;
        if (event.text || lps.length > 0)
          await sse.send(
            chunk([delta(event.index, { content: event.text }, null, undefined, withLogprobs ? lps : undefined)]),
          );
        await sse.send(chunk([delta(event.index, {}, openAiFinishReason(event.finishReason), event.stopSequence)]));
      } else if (includeUsage) {
        await sse.send(chunk([], event.usage));
      }
    }
    await sse.send('[DONE]');
    if (!sse.closed) recordStreamedAnswer(ctx.state, { choices: said.map((text) => ({ text })) });
  } catch (err) {
    await sse.error(err);
  } finally {
    sse.end();
  }
  return undefined;
}

async function completions(
  ctx: RouteContext,
  deps: RouteDeps,
  body: CompletionBody,
  version: string | undefined,
): Promise<RouteAnswer> {
  refuseUnsupported(body);
  const prompts = promptList(body.prompt);
  if (prompts.length > deps.maxPromptsPerRequest) {
    throw badRequest(
      'too_many_prompts',
      `at most ${deps.maxPromptsPerRequest} prompts per request (got ${prompts.length})`,
      'prompt',
    );
  }
  if (body.echo && prompts.some((p) => typeof p !== 'string'))
    throw badRequest('unsupported_field', "'echo' needs text prompts, not token ids", 'echo');
  const signal = disconnectSignal(ctx);
  const controller = new AbortController();
  signal.addEventListener('abort', () => controller.abort(), { once: true });
  // The legacy completions API defaults to 16 tokens (as OpenAI and vLLM do); chat uses what the context leaves.
  const sampling = { maxTokens: 16, ...samplingOf(body), ...countOf(body.logprobs) };
  const withLogprobs = sampling.logprobs !== undefined;
  const n = sampling.n ?? 1;
  const requestId = (ctx.state as { requestId?: string }).requestId ?? '';
  const service = deps.generation(ctx);
  const deadline = deadlineOf(ctx);
  let streams: GenerationStream[];
  const requests: GenerateRequest[] = prompts.map((prompt) => ({
    model: body.model,
    ...(version !== undefined && { version }),
    prompt,
    ...sampling,
    ...tenancyOf(ctx),
    requestId,
    ...deadline,
  }));
  try {
    // Several prompts are admitted as one unit (one queue entry, a running slot per prompt), so they never hold
    // part of the slots while waiting for the rest; an engine without that admits them one by one.
    streams =
      requests.length > 1 && service.generateBatch
        ? await service.generateBatch(requests, controller.signal)
        : await Promise.all(requests.map((request) => service.generate(request, controller.signal)));
  } catch (err) {
    // One prompt was refused: the others were admitted and must not run on.
    controller.abort();
    throw err;
  }
  const id = responseId('cmpl');
  const first = streams[0]!;
  const echo = (p: number) => (body.echo ? (prompts[p] as string) : '');
  if (!body.stream) {
    try {
      const results = await Promise.all(streams.map((s) => collect(s, n)));
      const usage = results.reduce(
        (u, r) => ({
          promptTokens: u.promptTokens + r.usage.promptTokens,
          completionTokens: u.completionTokens + r.usage.completionTokens,
          totalTokens: u.totalTokens + r.usage.totalTokens,
        }),
        { promptTokens: 0, completionTokens: 0, totalTokens: 0 },
      );
      return {
        id,
        object: 'text_completion',
        created: first.created,
        model: first.model,
        choices: results.flatMap((r, p) =>
          r.choices.map((c) => ({
            index: p * n + c.index,
            text: echo(p) + c.text,
            logprobs: withLogprobs ? legacyLogprobs(c.logprobs ?? [], echo(p).length) : null,
            finish_reason: openAiFinishReason(c.finishReason),
            stop_reason: c.stopSequence ?? null,
          })),
        ),
        usage: usageBody(usage),
      };
    } catch (err) {
      controller.abort();
      throw err;
    }
  }
  const includeUsage = body.stream_options?.include_usage === true;
  const chunk = (choices: unknown[], usage?: GenerationUsage) => ({
    id,
    object: 'text_completion',
    created: first.created,
    model: first.model,
    choices,
    ...(includeUsage && { usage: usage ? usageBody(usage) : null }),
  });
  const choice = (index: number, text: string, finish: string | null = null, stop?: string, lps?: unknown) => ({
    index,
    text,
    logprobs: lps ?? null,
    finish_reason: finish,
    ...(finish !== null && { stop_reason: stop ?? null }),
  });
  const sse = SseStream.open(ctx, deliveryReport(deps.events, first.model, requestId));
  const total = { promptTokens: 0, completionTokens: 0, totalTokens: 0 };
  // What each choice said in full (as a complete answer gives it), for a shadow copy's comparison.
  const said = Array.from({ length: prompts.length * n }, (_, i) => echo(Math.floor(i / n)));
  // Where each choice's next token starts in its text, for `text_offset`.
  const offsets = said.map((s) => s.length);
  try {
    if (body.echo)
      for (let p = 0; p < prompts.length; p++)
        for (let i = 0; i < n; i++) await sse.send(chunk([choice(p * n + i, echo(p))]));
    for await (const { source, event } of mergeStreams(streams)) {
      if (sse.closed) break;
      if (event.type !== 'done') said[source * n + event.index] += event.text;
      if (event.type === 'token' && event.logprobs) {
        const at = source * n + event.index;
        const lps = legacyLogprobs([event.logprobs], offsets[at]!);
        offsets[at]! += event.logprobs.token.length;
        await sse.sendToken(chunk([choice(at, event.text, null, undefined, lps)]), event.sampledAt);
      } else if (event.type === 'token') {
        if (event.text) await sse.sendToken(chunk([choice(source * n + event.index, event.text)]), event.sampledAt);
      } else if (event.type === 'finish') {
        await sse.send(
          chunk([
            choice(source * n + event.index, event.text, openAiFinishReason(event.finishReason), event.stopSequence),
          ]),
        );
      } else {
        total.promptTokens += event.usage.promptTokens;
        total.completionTokens += event.usage.completionTokens;
        total.totalTokens += event.usage.totalTokens;
      }
    }
    if (includeUsage && !sse.closed) await sse.send(chunk([], total));
    await sse.send('[DONE]');
    if (!sse.closed) recordStreamedAnswer(ctx.state, { choices: said.map((text) => ({ text })) });
  } catch (err) {
    controller.abort();
    await sse.error(err);
  } finally {
    sse.end();
  }
  return undefined;
}

function promptList(prompt: CompletionBody['prompt']): (string | number[])[] {
  if (typeof prompt === 'string') return [prompt];
  if (prompt.every((p) => typeof p === 'number')) return [prompt as number[]];
  return prompt as (string | number[])[];
}

async function embeddings(
  ctx: RouteContext,
  deps: RouteDeps,
  body: EmbeddingBody,
  version: string | undefined,
): Promise<RouteAnswer> {
  const result = await deps.generation(ctx).embed(
    {
      model: body.model,
      ...(version !== undefined && { version }),
      input: body.input,
      ...(body.dimensions != null && { dimensions: body.dimensions }),
      ...(body.pooling != null && { pooling: body.pooling }),
      ...(body.normalize != null && { normalize: body.normalize }),
      requestId: (ctx.state as { requestId?: string }).requestId ?? '',
    },
    disconnectSignal(ctx),
  );
  const base64 = body.encoding_format === 'base64';
  return {
    object: 'list',
    data: result.embeddings.map((v, index) => ({
      object: 'embedding',
      index,
      // base64 is the little-endian float32 bytes, which is what the official clients decode.
      embedding: base64 ? Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('base64') : Array.from(v),
    })),
    model: result.model,
    usage: { prompt_tokens: result.promptTokens, total_tokens: result.promptTokens },
  };
}

/** Per choice of a streamed chat completion with tools: its text turned into OpenAI's content and tool_calls deltas. */
class ToolDeltas {
  readonly #streams: ToolCallStream[];
  readonly #ids: string[][];

  constructor(output: ChatOutput, n: number) {
    this.#streams = Array.from({ length: n }, () => new ToolCallStream(output.choice));
    this.#ids = Array.from({ length: n }, () => []);
  }

  /** The deltas `text` of choice `index` completes. */
  push(index: number, text: string): Record<string, unknown>[] {
    return text ? this.#stream(index, this.#streams[index]!.push(text)) : [];
  }

  /** The deltas left at the end of choice `index`. */
  end(index: number): Record<string, unknown>[] {
    return this.#stream(index, this.#streams[index]!.end());
  }

  /** Whether choice `index` called a tool. */
  called(index: number): boolean {
    return this.#ids[index]!.length > 0;
  }

  // A call's first delta carries its id, type and name; later ones only its index and more arguments.
  #stream(index: number, deltas: ToolStreamDelta[]): Record<string, unknown>[] {
    const ids = this.#ids[index]!;
    return deltas.map((d) => {
      if (d.type === 'content') return { content: d.text };
      const first = d.name !== undefined;
      if (first) ids[d.index] = toolCallId();
      return {
        tool_calls: [
          {
            index: d.index,
            ...(first && { id: ids[d.index], type: 'function' }),
            function: { ...(first && { name: d.name }), arguments: d.arguments },
          },
        ],
      };
    });
  }
}
