import {
  defaultModelOf,
  NucleusError,
  tenancyOf,
  type GenerateRequest,
  type RouteContext,
  type RouteContribution,
} from '@nucleus/sdk';
import type { RouteDeps } from './openai-routes.js';
import {
  chatMessagesOf,
  collect,
  deliveryReport,
  disconnectSignal,
  hooked,
  refuseUnsupported,
  responseId,
  samplingOf,
  unixNow,
  usageBody,
  type BodyMessage,
  type RouteAnswer,
  type SamplingBody,
} from './request-mapping.js';
import { CHAT_SCHEMA, EMBEDDING_SCHEMA, GENERATE_SCHEMA, validator } from './schemas.js';
import { countOf, nativeLogprobs } from './logprobs-mapping.js';
import { recordStreamedAnswer, SseStream } from '@nucleus/sdk';
import type { EmbeddingBody } from './openai-routes.js';

/** `POST /generate` body. */
export interface GenerateBody extends SamplingBody {
  prompt: string | number[];
  /** Log-probs of each token with this many alternatives, as llama.cpp's `n_probs`. */
  n_probs?: number | null;
}

/** `POST /chat` body. */
export interface NativeChatBody extends SamplingBody {
  messages: BodyMessage[];
  add_generation_prompt?: boolean | null;
}

// `model` may be left out of the native generation routes: the request goes to the default LLM (see withDefaultModel).
const modelOptional = (schema: { required: string[] }) => ({
  ...schema,
  required: schema.required.filter((f) => f !== 'model'),
});
const GENERATE_BODY = modelOptional(GENERATE_SCHEMA);
const CHAT_BODY = modelOptional(CHAT_SCHEMA);
const checkGenerate = validator<GenerateBody>(GENERATE_BODY);
const checkChat = validator<NativeChatBody>(CHAT_BODY);
const checkEmbedding = validator<EmbeddingBody>(EMBEDDING_SCHEMA);

/**
 * Nucleus's own generation API: `/generate` (prompt), `/chat` (messages) and `/embeddings`; `/generate` and `/chat`
 * take the default LLM when the body names no `model`. Answers carry the
 * server's request id, every choice's text, token ids, finish reason (`stop`, `length` or `stop_sequence`) and
 * usage; streams are SSE events of `{id, request_id, index, token: {id, text}, finish_reason}`.
 */
export function nativeRoutes(deps: RouteDeps, defaultModel: () => string | undefined): RouteContribution[] {
  // A body that names no model goes to `server.defaultModel`, or to the one LLM served (400 when that is ambiguous).
  const withDefaultModel =
    <T extends { model: string }>(check: (body: unknown) => T, ctx: RouteContext) =>
    (body: unknown): T => {
      const checked = check(body);
      return checked.model === undefined
        ? { ...checked, model: defaultModelOf(deps.generation(ctx), defaultModel()) }
        : checked;
    };
  return [
    {
      method: 'POST',
      path: '/generate',
      doc: {
        summary: 'Generate text from a prompt (the default LLM when `model` is left out); `stream: true` for SSE',
        tags: ['native'],
        body: GENERATE_BODY,
      },
      handler: (ctx) =>
        hooked(
          ctx,
          deps.hooks,
          withDefaultModel(checkGenerate, ctx),
          (body, version) => generate(ctx, deps, body, { prompt: body.prompt }, version),
          () => deps.generation(ctx),
        ),
    },
    {
      method: 'POST',
      path: '/chat',
      doc: {
        summary:
          'Chat with an LLM through its chat template (the default LLM when `model` is left out); `stream: true` for SSE',
        tags: ['native'],
        body: CHAT_BODY,
      },
      handler: (ctx) =>
        hooked(
          ctx,
          deps.hooks,
          withDefaultModel(checkChat, ctx),
          (body, version) =>
            generate(
              ctx,
              deps,
              body,
              {
                messages: chatMessagesOf(body.messages),
                ...(body.add_generation_prompt != null && { addGenerationPrompt: body.add_generation_prompt }),
              },
              version,
            ),
          () => deps.generation(ctx),
        ),
    },
    {
      method: 'POST',
      path: '/embeddings',
      doc: { summary: 'Embeddings of one or more inputs', tags: ['native'], body: EMBEDDING_SCHEMA },
      handler: (ctx) =>
        hooked(
          ctx,
          deps.hooks,
          checkEmbedding,
          (body, version) => embeddings(ctx, deps, body, version),
          () => deps.generation(ctx),
        ),
    },
    {
      // A conversation ended: its prefix-cache entries that nothing else uses are freed (optionally `?model=`). A
      // conversation is its key's: another key's, like one with nothing cached, is not found, whatever it holds.
      method: 'DELETE',
      path: '/conversations/:id',
      handler: async (ctx) => {
        const model = typeof ctx.query.model === 'string' ? ctx.query.model : undefined;
        const service = deps.generation(ctx);
        const bytes = await service.releaseConversation?.(ctx.params.id!, model, tenancyOf(ctx).tenant);
        if (bytes === undefined)
          throw new NucleusError(
            404,
            'conversation_not_found',
            `no cached entries of conversation "${ctx.params.id}" for this API key${model ? ` in model "${model}"` : ''}`,
          );
        return { id: ctx.params.id, object: 'conversation.released', released_bytes: bytes };
      },
    },
  ];
}

async function generate(
  ctx: RouteContext,
  deps: RouteDeps,
  body: SamplingBody,
  input: Pick<GenerateRequest, 'prompt' | 'messages' | 'addGenerationPrompt'>,
  version: string | undefined,
): Promise<RouteAnswer> {
  refuseUnsupported(body);
  const requestId = (ctx.state as { requestId?: string }).requestId ?? '';
  const request: GenerateRequest = {
    model: body.model,
    ...(version !== undefined && { version }),
    ...input,
    ...samplingOf(body),
    ...countOf(body.n_probs),
    ...tenancyOf(ctx),
    requestId,
  };
  const n = request.n ?? 1;
  const stream = await deps.generation(ctx).generate(request, disconnectSignal(ctx));
  const id = responseId('gen');
  const chat = input.messages !== undefined;
  if (!body.stream) {
    const result = await collect(stream, n);
    return {
      id,
      request_id: requestId,
      object: chat ? 'chat' : 'generation',
      created: stream.created,
      model: stream.model,
      choices: result.choices.map((c) => ({
        index: c.index,
        text: c.text,
        ...(chat && { message: { role: 'assistant', content: c.text } }),
        token_ids: c.tokenIds,
        ...(request.logprobs !== undefined && { logprobs: (c.logprobs ?? []).map(nativeLogprobs) }),
        finish_reason: c.finishReason,
        stop_sequence: c.stopSequence ?? null,
      })),
      usage: usageBody(result.usage),
    };
  }
  const sse = SseStream.open(ctx, deliveryReport(deps.events, stream.model, requestId));
  // A token event is JSON.stringify of {id, request_id, index, token: {id, text}, finish_reason: null}, written out
  // by hand: only the index, the token and its text change from one to the next.
  const tokenHead = `{"id":${JSON.stringify(id)},"request_id":${JSON.stringify(requestId)},"index":`;
  // What each choice said in full, for a shadow copy's comparison once the stream has ended.
  const said = Array.from({ length: n }, () => '');
  try {
    for await (const event of stream) {
      if (sse.closed) break;
      if (event.type !== 'done') said[event.index] += event.text;
      if (event.type === 'token') {
        await sse.sendToken(
          `${tokenHead}${event.index},"token":{"id":${event.tokenId},"text":${JSON.stringify(event.text)}},${event.logprobs ? `"logprobs":${JSON.stringify(nativeLogprobs(event.logprobs))},` : ''}"finish_reason":null}`,
          event.sampledAt,
        );
      } else if (event.type === 'finish') {
        await sse.send({
          id,
          request_id: requestId,
          index: event.index,
          token: null,
          text: event.text,
          finish_reason: event.finishReason,
          stop_sequence: event.stopSequence ?? null,
          completion_tokens: event.completionTokens,
        });
      } else {
        await sse.send({ id, request_id: requestId, done: true, usage: usageBody(event.usage) }, 'done');
      }
    }
    if (!sse.closed) recordStreamedAnswer(ctx.state, { choices: said.map((text) => ({ text })) });
  } catch (err) {
    await sse.error(err);
  } finally {
    sse.end();
  }
  return undefined;
}

async function embeddings(
  ctx: RouteContext,
  deps: RouteDeps,
  body: EmbeddingBody,
  version: string | undefined,
): Promise<RouteAnswer> {
  const requestId = (ctx.state as { requestId?: string }).requestId ?? '';
  const result = await deps.generation(ctx).embed(
    {
      model: body.model,
      ...(version !== undefined && { version }),
      input: body.input,
      ...(body.dimensions != null && { dimensions: body.dimensions }),
      ...(body.pooling != null && { pooling: body.pooling }),
      ...(body.normalize != null && { normalize: body.normalize }),
      requestId,
    },
    disconnectSignal(ctx),
  );
  return {
    id: responseId('emb'),
    request_id: requestId,
    object: 'list',
    created: unixNow(),
    model: result.model,
    data: result.embeddings.map((v, index) => ({ index, embedding: Array.from(v) })),
    usage: { prompt_tokens: result.promptTokens, total_tokens: result.promptTokens },
  };
}
