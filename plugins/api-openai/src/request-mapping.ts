import { randomBytes } from 'node:crypto';
import {
  badRequest,
  type ChatMessage,
  type EventBus,
  type FinishReason,
  type GenerateRequest,
  type GenerationPriority,
  type GenerationService,
  type GenerationStream,
  type GenerationUsage,
  type InferenceExchange,
  type InferenceHookInput,
  type InferenceHooks,
  NucleusError,
  type RequestHeaders,
  type ResponseHeaders,
  type RouteContext,
  type SseStreamOptions,
  type TokenLogprobs,
} from '@nucleus/sdk';

/** Sampling fields as the HTTP APIs spell them (OpenAI names, plus the vLLM extras). */
export interface SamplingBody {
  model: string;
  max_tokens?: number | null;
  max_completion_tokens?: number | null;
  temperature?: number | null;
  top_p?: number | null;
  top_k?: number | null;
  n?: number | null;
  seed?: number | null;
  stop?: string | string[] | null;
  frequency_penalty?: number | null;
  presence_penalty?: number | null;
  repetition_penalty?: number | null;
  ignore_eos?: boolean | null;
  stream?: boolean | null;
  stream_options?: { include_usage?: boolean | null } | null;
  priority?: GenerationPriority | number | null;
  /** Tags the prefix-cache entries of this turn; `DELETE /conversations/:id` releases them. */
  conversation_id?: string | null;
  [extra: string]: unknown;
}

/** A chat message as clients send it: content may be a list of parts. */
export interface BodyMessage {
  role: string;
  content?: string | { type: string; text?: string }[] | null;
  name?: string;
  /** An assistant turn's calls, sent back with the tool results. */
  tool_calls?: { id: string; type?: 'function'; function: { name: string; arguments: string } }[] | null;
  /** A `tool` turn: the call it answers. */
  tool_call_id?: string;
}

/** Fields OpenAI defines that change what is generated and that this server does not do: refused, not ignored. */
const UNSUPPORTED: Record<string, (v: unknown) => boolean> = {
  tools: (v) => Array.isArray(v) && v.length > 0,
  functions: (v) => Array.isArray(v) && v.length > 0,
  logit_bias: (v) => v !== null && typeof v === 'object' && Object.keys(v).length > 0,
  best_of: (v) => typeof v === 'number' && v > 1,
  suffix: (v) => typeof v === 'string' && v.length > 0,
  response_format: (v) => v !== null && typeof v === 'object' && (v as { type?: unknown }).type !== 'text',
};

/**
 * Throws 400 for a field the server would otherwise silently ignore although it changes the output; `handled` are
 * the fields the route itself does (chat completions: `tools`, `response_format`).
 */
export function refuseUnsupported(body: Record<string, unknown>, handled: readonly string[] = []): void {
  for (const [field, isUsed] of Object.entries(UNSUPPORTED)) {
    if (handled.includes(field)) continue;
    if (body[field] !== undefined && isUsed(body[field]))
      throw badRequest('unsupported_field', `'${field}' is not supported by this server`, field);
  }
}

/** The engine's sampling options from a body; null means "not given", as the OpenAI clients send it. */
export function samplingOf(body: SamplingBody): Omit<GenerateRequest, 'model' | 'prompt' | 'messages'> {
  const out: Omit<GenerateRequest, 'model' | 'prompt' | 'messages'> = {};
  const maxTokens = body.max_completion_tokens ?? body.max_tokens;
  if (maxTokens != null) out.maxTokens = maxTokens;
  if (body.temperature != null) out.temperature = body.temperature;
  if (body.top_p != null) out.topP = body.top_p;
  if (body.top_k != null) out.topK = body.top_k;
  if (body.n != null) out.n = body.n;
  if (body.seed != null) out.seed = body.seed;
  if (body.stop != null) out.stop = typeof body.stop === 'string' ? [body.stop] : body.stop;
  if (body.frequency_penalty != null) out.frequencyPenalty = body.frequency_penalty;
  if (body.presence_penalty != null) out.presencePenalty = body.presence_penalty;
  if (body.repetition_penalty != null) out.repetitionPenalty = body.repetition_penalty;
  if (body.ignore_eos != null) out.ignoreEos = body.ignore_eos;
  if (body.priority != null) out.priority = priorityOf(body.priority);
  if (body.conversation_id != null) out.conversationId = body.conversation_id;
  // A response sent whole is seen only at its end: a generation cut short by a dying worker can run again unseen.
  if (!body.stream) out.buffered = true;
  return out;
}

// vLLM spells priority as a number where lower goes first; Nucleus has three classes.
function priorityOf(p: GenerationPriority | number): GenerationPriority {
  if (typeof p === 'string') return p;
  return p < 0 ? 'high' : p > 0 ? 'low' : 'normal';
}

/** Messages with their content flattened to text (the parts' texts joined). */
export function chatMessagesOf(messages: BodyMessage[]): ChatMessage[] {
  return messages.map((m, i) => {
    let content: string;
    if (typeof m.content === 'string') content = m.content;
    else if (m.content == null) content = '';
    else {
      const other = m.content.find((p) => p.type !== 'text');
      if (other)
        throw badRequest(
          'unsupported_content',
          `messages[${i}] has a '${other.type}' part; only text parts are supported`,
          'messages',
        );
      content = m.content.map((p) => p.text ?? '').join('');
    }
    return {
      role: m.role,
      content,
      ...(m.name !== undefined && { name: m.name }),
      ...(m.tool_calls != null &&
        m.tool_calls.length > 0 && {
          toolCalls: m.tool_calls.map((c) => ({ id: c.id, name: c.function.name, arguments: c.function.arguments })),
        }),
      ...(m.tool_call_id !== undefined && { toolCallId: m.tool_call_id }),
    };
  });
}

/** OpenAI's finish reasons: a stop string is `stop` too. */
export function openAiFinishReason(reason: FinishReason): 'stop' | 'length' {
  return reason === 'length' ? 'length' : 'stop';
}

/** A random id with an OpenAI-style prefix (`chatcmpl-…`, `cmpl-…`). */
export function responseId(prefix: string): string {
  return `${prefix}-${randomBytes(12).toString('hex')}`;
}

/** Unix time in seconds. */
export function unixNow(): number {
  return Math.floor(Date.now() / 1000);
}

/** Usage in the APIs' snake case; `prompt_tokens_details.cached_tokens` as OpenAI reports prefix-cache hits. */
export function usageBody(u: GenerationUsage): {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  prompt_tokens_details?: { cached_tokens: number };
} {
  return {
    prompt_tokens: u.promptTokens,
    completion_tokens: u.completionTokens,
    total_tokens: u.totalTokens,
    ...(u.cachedPromptTokens !== undefined && { prompt_tokens_details: { cached_tokens: u.cachedPromptTokens } }),
  };
}

/**
 * The parsed JSON body (the server's body parser put it there). A body of another type is not parsed at all, so it
 * is refused as such (415) rather than reported as missing every field; so is a request with no body (400).
 */
export function bodyOf(ctx: RouteContext): unknown {
  const length = ctx.request.length as number | undefined;
  if (length === 0 || (length === undefined && !ctx.get('transfer-encoding'))) {
    throw badRequest(
      'invalid_request',
      'the request has no body: send a JSON object with Content-Type: application/json',
    );
  }
  if (!ctx.is('json')) {
    const type = ctx.get('content-type');
    throw new NucleusError(
      415,
      'unsupported_media_type',
      `the request body must be JSON, sent with Content-Type: application/json (${type ? `got ${type}` : 'no Content-Type was sent'})`,
    );
  }
  return (ctx.request as { body?: unknown }).body;
}

/** Aborts when the client disconnects before the response is complete (for requests answered in one piece). */
export function disconnectSignal(ctx: RouteContext): AbortSignal {
  const controller = new AbortController();
  ctx.res.once('close', () => {
    if (!ctx.res.writableFinished) controller.abort();
  });
  return controller.signal;
}

/** One choice, gathered from a stream. */
export interface CollectedChoice {
  index: number;
  text: string;
  tokenIds: number[];
  finishReason: FinishReason;
  stopSequence?: string;
  /** Where the request asked for log-probs: one per token. */
  logprobs?: TokenLogprobs[];
}

/** A whole generation, gathered for a non-streaming answer. */
export interface Collected {
  choices: CollectedChoice[];
  usage: GenerationUsage;
}

/** Reads a stream to its end. */
export async function collect(stream: GenerationStream, choices: number): Promise<Collected> {
  const out: CollectedChoice[] = Array.from({ length: choices }, (_, index) => ({
    index,
    text: '',
    tokenIds: [],
    finishReason: 'stop' as FinishReason,
  }));
  let usage: GenerationUsage = {
    promptTokens: stream.promptTokens,
    completionTokens: 0,
    totalTokens: stream.promptTokens,
  };
  for await (const event of stream) {
    if (event.type === 'token') {
      out[event.index]!.text += event.text;
      out[event.index]!.tokenIds.push(event.tokenId);
      if (event.logprobs) (out[event.index]!.logprobs ??= []).push(event.logprobs);
    } else if (event.type === 'finish') {
      const c = out[event.index]!;
      c.text += event.text;
      c.finishReason = event.finishReason;
      if (event.stopSequence !== undefined) c.stopSequence = event.stopSequence;
    } else usage = event.usage;
  }
  return { choices: out, usage };
}

/** SSE options that report a stream's token delivery delays as `generation.delivery` events. */
export function deliveryReport(events: EventBus, model: string, requestId: string): SseStreamOptions {
  return { onTokenDelivery: (delaysMs) => events.emit('generation.delivery', { model, requestId, delaysMs }) };
}

/** What a route answers: a complete body, or undefined once it has streamed its answer itself. */
export type RouteAnswer = Record<string, unknown> | undefined;

/** The model (and version) a request's `model` field addresses. */
export interface Addressed {
  model: string;
  version?: string;
}

/**
 * What `model` addresses: a name served as it is, or `name:version` (the form Ollama users write) for one version of
 * a name served with versions side by side, which no router then moves. A name that contains `:` itself wins.
 */
export function addressOf(service: GenerationService | undefined, model: string): Addressed {
  const at = model.lastIndexOf(':');
  if (at <= 0 || at === model.length - 1 || !service?.listVersions) return { model };
  const all = service.listVersions();
  const name = model.slice(0, at);
  if (all.some((m) => m.name === model) || !all.some((m) => m.name === name)) return { model };
  return { model: name, version: model.slice(at + 1) };
}

/**
 * Runs an inference route through the hooks and routers: they see the checked body, and what they hand back (with
 * the model and version a router chose) is checked again before `handle` runs it, so a hook cannot slip an invalid
 * field past the schema. A request no hook or router touched is not checked twice. `service` resolves `name:version`
 * (see {@link addressOf}). A streamed request's shadow copy runs unstreamed (`stream: false`) once the stream ends.
 */
export function hooked<T extends { model: string }>(
  ctx: RouteContext,
  hooks: InferenceHooks,
  check: (body: unknown) => T,
  handle: (body: T, version: string | undefined) => Promise<RouteAnswer>,
  service?: () => GenerationService | undefined,
): Promise<RouteAnswer> {
  return hookedRequest({ body: bodyOf(ctx), headers: ctx.headers, exchange: ctx }, hooks, check, handle, service);
}

/** The request {@link hookedRequest} runs: its body as sent, its headers, and where hooks set response headers. */
export interface HookedExchange {
  body: unknown;
  headers: RequestHeaders;
  exchange: ResponseHeaders | InferenceExchange;
}

/**
 * {@link hooked} for a request that did not come as an HTTP request (a WebSocket message): the same checks, hooks,
 * routers and shadow copies, with its headers and exchange given.
 */
export function hookedRequest<T extends { model: string }, R extends RouteAnswer>(
  request: HookedExchange,
  hooks: InferenceHooks,
  check: (body: unknown) => T,
  handle: (body: T, version: string | undefined) => Promise<R>,
  service?: () => GenerationService | undefined,
): Promise<R> {
  let checked = check(request.body);
  const address = service ? addressOf(safely(service), checked.model) : { model: checked.model };
  if (address.model !== checked.model) checked = { ...checked, model: address.model };
  const input: InferenceHookInput = {
    model: address.model,
    ...(address.version !== undefined && { version: address.version }),
    body: checked as unknown as Record<string, unknown>,
  };
  const run = (routed: InferenceHookInput, body: Record<string, unknown>) =>
    handle(routed === input ? checked : check({ ...body, model: routed.model }), routed.version);
  return hooks.run(input, request.headers, (routed) => run(routed, routed.body), request.exchange, {
    unstreamed: (routed) => run({ ...routed }, { ...routed.body, stream: false }),
  });
}

// The engine where there is one: a server without one answers 503 later, where the route needs it.
function safely(service: () => GenerationService | undefined): GenerationService | undefined {
  try {
    return service();
  } catch {
    return undefined;
  }
}
