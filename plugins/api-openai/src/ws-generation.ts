import type { GenerateRequest, GenerationService, InferenceHooks, WsRequest, WsRequestHandler } from '@nucleus/sdk';
import { chatLogprobs, chatLogprobsOf, countOf, nativeLogprobs } from './logprobs-mapping.js';
import type { GenerateBody, NativeChatBody } from './native-routes.js';
import type { ChatCompletionBody } from './openai-routes.js';
import {
  chatMessagesOf,
  hookedRequest,
  openAiFinishReason,
  refuseUnsupported,
  samplingOf,
  usageBody,
} from './request-mapping.js';
import { CHAT_COMPLETION_SCHEMA, GENERATE_SCHEMA, validator } from './schemas.js';

const checkGenerate = validator<GenerateBody>(GENERATE_SCHEMA);
const checkChat = validator<ChatCompletionBody & NativeChatBody>(CHAT_COMPLETION_SCHEMA);
type WsBody = GenerateBody | (ChatCompletionBody & NativeChatBody);

/**
 * Generation over `/ws`: `{"type":"generate","id",…}` with `/generate`'s fields streams `{"type":"token","id",index,
 * token:{id,text}}` messages, `{"type":"chat","id",…}` with `/v1/chat/completions`' fields streams `{"type":"delta",
 * "id",index,content}`; both end with `{"type":"done","id",usage,finish_reason,choices}`. Several run at once on one
 * socket; the server's WS mechanism handles ids, cancellation, rate limits and slow readers. Each runs through the
 * hooks and routers as its HTTP route does (A/B, canary: a router's choice of version applies; a stream is not copied
 * to a shadow), under the server's request id, so its tokens are charged to the socket's key.
 */
export function wsGeneration(engine: () => GenerationService, hooks: InferenceHooks): WsRequestHandler {
  return {
    types: ['generate', 'chat'],
    streams: ['generate', 'chat'],
    handle: async (ws) => {
      const check = ws.type === 'chat' ? checkChat : checkGenerate;
      await hookedRequest<WsBody, undefined>(
        ws,
        hooks,
        (body) => check(body),
        (body, version) => run(engine, ws, body, version),
        // The engine is looked up per request: a server without one answers 503 as an error message.
        () => safely(engine),
      );
    },
  };
}

function safely(engine: () => GenerationService): GenerationService | undefined {
  try {
    return engine();
  } catch {
    return undefined;
  }
}

async function run(
  engine: () => GenerationService,
  ws: WsRequest,
  body: WsBody,
  version: string | undefined,
): Promise<undefined> {
  const chat = ws.type === 'chat';
  refuseUnsupported(body);
  const service = engine();
  const { model } = body;
  const sampling = samplingOf({ ...body, stream: true });
  const request: GenerateRequest = {
    model,
    ...(version !== undefined && { version }),
    ...(chat
      ? { messages: chatMessagesOf((body as ChatCompletionBody).messages) }
      : { prompt: (body as GenerateBody).prompt }),
    ...sampling,
    ...(chat ? chatLogprobsOf(body) : countOf((body as GenerateBody).n_probs)),
    ...ws.tenancy,
    requestId: ws.requestId,
  };
  const stream = await service.generate(request, ws.signal);
  const finishes: Record<string, unknown>[] = [];
  for await (const event of stream) {
    if (ws.signal.aborted) return undefined;
    let sent = true;
    if (event.type === 'token') {
      if (chat) {
        if (event.text || event.logprobs)
          sent = ws.send({
            type: 'delta',
            index: event.index,
            content: event.text,
            ...(event.logprobs && { logprobs: chatLogprobs([event.logprobs]) }),
          });
      } else
        sent = ws.send({
          type: 'token',
          index: event.index,
          token: { id: event.tokenId, text: event.text },
          ...(event.logprobs && { logprobs: nativeLogprobs(event.logprobs) }),
        });
    } else if (event.type === 'finish') {
      if (event.text)
        sent = ws.send(
          chat
            ? { type: 'delta', index: event.index, content: event.text }
            : { type: 'token', index: event.index, token: null, text: event.text },
        );
      finishes[event.index] = {
        index: event.index,
        finish_reason: chat ? openAiFinishReason(event.finishReason) : event.finishReason,
        stop_sequence: event.stopSequence ?? null,
      };
    } else {
      ws.send({
        type: 'done',
        model: stream.model,
        usage: usageBody(event.usage),
        finish_reason: finishes[0]?.finish_reason ?? null,
        choices: finishes,
      });
    }
    // The client cancelled, closed, or read too slowly: leaving the loop cancels the generation.
    if (!sent) return undefined;
  }
  return undefined;
}
