import {
  badRequest,
  GENERATION_VERSION,
  generationModel,
  recordStreamedAnswer,
  SseStream,
  tenancyOf,
  type GenerateRequest,
  type GenerationService,
  type GenerationStream,
  type InferenceHookInput,
  type InferenceHooks,
  type RouteContext,
  type RouteContribution,
} from '@nucleus/sdk';
import { clientSignal, requestBody, requestId } from './http-helpers.js';

export { GENERATION_VERSION, generationModel, LLM_PLATFORM, llmMetadata } from '@nucleus/sdk';

type Checker = (value: unknown, field: string) => unknown;

const number: Checker = (value, field) => {
  if (typeof value !== 'number' || !Number.isFinite(value))
    throw badRequest('invalid_parameter', `${field} must be a number, got ${JSON.stringify(value)}`, field);
  return value;
};
const integer: Checker = (value, field) => {
  if (!Number.isInteger(value))
    throw badRequest('invalid_parameter', `${field} must be an integer, got ${JSON.stringify(value)}`, field);
  return value;
};
const boolean: Checker = (value, field) => {
  if (typeof value !== 'boolean')
    throw badRequest('invalid_parameter', `${field} must be true or false, got ${JSON.stringify(value)}`, field);
  return value;
};
const strings: Checker = (value, field) => {
  // TensorRT-LLM's `stop_words` is one string; vLLM's `stop` is a string or a list of them.
  if (typeof value === 'string') return value === '' ? [] : [value];
  if (Array.isArray(value) && value.every((s) => typeof s === 'string')) return value;
  throw badRequest(
    'invalid_parameter',
    `${field} must be a string or a list of strings, got ${JSON.stringify(value)}`,
    field,
  );
};

/** The sampling parameters a generate request may give (in `parameters`, or at the top level as TensorRT-LLM's ensemble takes them), by name. */
const PARAMETERS: Record<string, { key: keyof GenerateRequest | 'stream' | 'excludeInput'; check: Checker }> = {
  max_tokens: { key: 'maxTokens', check: integer },
  temperature: { key: 'temperature', check: number },
  top_p: { key: 'topP', check: number },
  top_k: { key: 'topK', check: integer },
  seed: { key: 'seed', check: integer },
  random_seed: { key: 'seed', check: integer },
  stop: { key: 'stop', check: strings },
  stop_words: { key: 'stop', check: strings },
  repetition_penalty: { key: 'repetitionPenalty', check: number },
  frequency_penalty: { key: 'frequencyPenalty', check: number },
  presence_penalty: { key: 'presencePenalty', check: number },
  ignore_eos: { key: 'ignoreEos', check: boolean },
  stream: { key: 'stream', check: boolean },
  exclude_input_in_output: { key: 'excludeInput', check: boolean },
};

/** A generate request as the engine takes it, and whether `text_output` starts with the prompt. */
export interface GenerateBody {
  request: GenerateRequest;
  includeInput: boolean;
}

/** Checks a generate extension body, naming the field that is wrong (400). */
export function parseGenerateBody(model: string, raw: unknown): GenerateBody {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw))
    throw badRequest('invalid_body', 'generate request: the body must be a JSON object');
  const body = raw as Record<string, unknown>;
  const prompt = body.text_input;
  if (prompt === undefined)
    throw badRequest('missing_text_input', 'generate request: text_input is required', 'text_input');
  if (typeof prompt !== 'string')
    throw badRequest(
      'invalid_text_input',
      `text_input must be a string, got ${(JSON.stringify(prompt) ?? String(prompt)).slice(0, 80)}`,
      'text_input',
    );
  const parameters = body.parameters ?? {};
  if (typeof parameters !== 'object' || parameters === null || Array.isArray(parameters)) {
    throw badRequest(
      'invalid_parameter',
      `parameters must be an object, got ${JSON.stringify(parameters)}`,
      'parameters',
    );
  }
  const values: Record<string, unknown> = {};
  const take = (name: string, value: unknown, field: string) => {
    const known = PARAMETERS[name];
    if (!known)
      throw badRequest(
        'unknown_parameter',
        `${field} is not a generate parameter (known: ${Object.keys(PARAMETERS).join(', ')})`,
        field,
      );
    values[known.key] = known.check(value, field);
  };
  for (const [name, value] of Object.entries(body))
    if (!['text_input', 'parameters', 'sampling_parameters'].includes(name)) take(name, value, name);
  // vLLM's `sampling_parameters` input: the parameters as JSON text.
  if (body.sampling_parameters !== undefined) {
    let sampling: unknown;
    try {
      sampling = typeof body.sampling_parameters === 'string' ? JSON.parse(body.sampling_parameters) : undefined;
    } catch {
      sampling = undefined;
    }
    if (typeof sampling !== 'object' || sampling === null || Array.isArray(sampling)) {
      throw badRequest(
        'invalid_parameter',
        `sampling_parameters must be a JSON object as text, got ${JSON.stringify(body.sampling_parameters)}`,
        'sampling_parameters',
      );
    }
    for (const [name, value] of Object.entries(sampling)) take(name, value, `sampling_parameters.${name}`);
  }
  for (const [name, value] of Object.entries(parameters)) take(name, value, `parameters.${name}`);
  const { stream: _stream, excludeInput, ...sampling } = values;
  return {
    request: { ...(sampling as Partial<GenerateRequest>), model, prompt },
    includeInput: excludeInput === false,
  };
}

/** The text of a one-choice generation as it comes: each token's text and the finish's. */
async function* texts(stream: GenerationStream): AsyncGenerator<string> {
  for await (const event of stream) {
    if (event.type === 'token' && event.text !== '') yield event.text;
    else if (event.type === 'finish' && event.text !== '') yield event.text;
  }
}

/**
 * Triton's generate extension over the generation engine: `POST /v2/models/{model}[/versions/1]/generate` answers
 * `{model_name, model_version, text_output}` once the text is complete; `…/generate_stream` sends one SSE `data:`
 * event of that shape per piece of text as it is generated.
 */
export function generateRoutes(
  generation: () => GenerationService | undefined,
  hooks: InferenceHooks,
): RouteContribution[] {
  // What the hooks see: the model and version the path addresses and the body, once it is a JSON object at all.
  const addressed = (ctx: RouteContext): InferenceHookInput => {
    const body = requestBody(ctx) ?? {};
    if (typeof body !== 'object' || body === null || Array.isArray(body)) parseGenerateBody(ctx.params.model!, body);
    const version = ctx.params.version;
    return {
      model: ctx.params.model!,
      ...(version !== undefined && { version }),
      body: body as Record<string, unknown>,
    };
  };

  const start = async (
    ctx: RouteContext,
    routed: InferenceHookInput,
    signal: AbortSignal,
  ): Promise<{ stream: GenerationStream; includeInput: boolean; prompt: string }> => {
    const service = generation();
    generationModel(service, routed.model, routed.version);
    const { request, includeInput } = parseGenerateBody(routed.model, routed.body);
    const id = requestId(ctx);
    const stream = await service!.generate(
      {
        ...request,
        ...(routed.version !== undefined && { version: routed.version }),
        ...tenancyOf(ctx),
        ...(id !== undefined && { requestId: id }),
      },
      signal,
    );
    return { stream, includeInput, prompt: request.prompt as string };
  };

  // The whole text as one body: `generate`, and the shadow copy of a `generate_stream`.
  const whole =
    (ctx: RouteContext) =>
    async (routed: InferenceHookInput): Promise<Record<string, unknown>> => {
      const { stream, includeInput, prompt } = await start(ctx, routed, clientSignal(ctx));
      let text = includeInput ? prompt : '';
      for await (const piece of texts(stream)) text += piece;
      return { model_name: stream.model, model_version: stream.version ?? GENERATION_VERSION, text_output: text };
    };

  const generate = (ctx: RouteContext) => hooks.run(addressed(ctx), ctx.headers, whole(ctx), ctx);

  // Routed and hooked on the way in; a stream has no complete body for `postInference`. Its shadow copy runs as a
  // `generate` once the stream has ended.
  const generateStream = (ctx: RouteContext) =>
    hooks.run(addressed(ctx), ctx.headers, (routed) => streamGeneration(ctx, routed), ctx, { unstreamed: whole(ctx) });

  const streamGeneration = async (ctx: RouteContext, routed: InferenceHookInput): Promise<undefined> => {
    const controller = new AbortController();
    // Admission and the checks answer with an HTTP status; once the stream is open, failures are events.
    const { stream, includeInput, prompt } = await start(ctx, routed, controller.signal);
    const sse = SseStream.open(ctx);
    sse.signal.addEventListener('abort', () => controller.abort(), { once: true });
    const chunk = (text: string) => ({
      model_name: stream.model,
      model_version: stream.version ?? GENERATION_VERSION,
      text_output: text,
    });
    let said = includeInput ? prompt : '';
    try {
      if (includeInput && prompt !== '') await sse.send(chunk(prompt));
      for await (const piece of texts(stream)) {
        said += piece;
        await sse.send(chunk(piece));
      }
      if (!sse.closed) recordStreamedAnswer(ctx.state, { text_output: said });
    } catch (err) {
      // KServe's generate_stream carries errors as plain data events.
      await sse.error(err, null);
    } finally {
      sse.end();
    }
    return undefined;
  };

  const routes: RouteContribution[] = [];
  for (const base of ['/v2/models/:model', '/v2/models/:model/versions/:version']) {
    routes.push(
      { method: 'POST', path: `${base}/generate`, handler: generate },
      { method: 'POST', path: `${base}/generate_stream`, handler: generateStream },
    );
  }
  return routes;
}
