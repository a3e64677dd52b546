import {
  badRequest,
  GENERATION_VERSION,
  GENERATE_PARAMETERS,
  generateParameter,
  generationModel,
  recordStreamedAnswer,
  samplingParameters,
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
    if (name === 'stream') {
      if (typeof value !== 'boolean')
        throw badRequest('invalid_parameter', `${field} must be true or false, got ${JSON.stringify(value)}`, field);
      return;
    }
    const known = generateParameter(name, value, field);
    if (!known)
      throw badRequest(
        'unknown_parameter',
        `${field} is not a generate parameter (known: ${[...Object.keys(GENERATE_PARAMETERS), 'stream'].join(', ')})`,
        field,
      );
    values[known.key] = known.value;
  };
  for (const [name, value] of Object.entries(body))
    if (!['text_input', 'parameters', 'sampling_parameters'].includes(name)) take(name, value, name);
  // vLLM's `sampling_parameters` input: the parameters as JSON text.
  if (body.sampling_parameters !== undefined)
    for (const [name, value] of Object.entries(samplingParameters(body.sampling_parameters)))
      take(name, value, `sampling_parameters.${name}`);
  for (const [name, value] of Object.entries(parameters)) take(name, value, `parameters.${name}`);
  const { excludeInput, ...sampling } = values;
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
