import {
  badRequest,
  defaultModelOf,
  tenancyOf,
  type FinishReason,
  type GenerationService,
  type InferenceHooks,
  type InferenceService,
  type RouteContext,
} from '@nucleus/sdk';
import { GENERATION_VERSION, generationModel, parseGenerateBody } from './generate-routes.js';
import { requestId } from './http-helpers.js';

/** The answer of an LLM request to `/infer` (and each such item of `/batch_infer` and `/stream_infer`). */
export interface InferGenerationAnswer extends Record<string, unknown> {
  model: string;
  version: string;
  outputs: { text: string };
  finish_reason: FinishReason;
  usage: { prompt_tokens: number; completion_tokens: number; total_tokens: number };
}

/**
 * Whether a native inference body is an LLM request: it carries a `prompt`, or it names a model that only the
 * generation engine serves (which then needs one).
 */
export function isGenerationRequest(
  raw: unknown,
  tensors: () => InferenceService,
  generation: () => GenerationService | undefined,
): boolean {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return false;
  const body = raw as Record<string, unknown>;
  if ('prompt' in body) return true;
  if (typeof body.model !== 'string') return false;
  const name = body.model;
  const llms = generation()?.list() ?? [];
  if (!llms.some((m) => m.name === name)) return false;
  try {
    return !tensors()
      .list()
      .some((m) => m.name === name);
  } catch {
    return true;
  }
}

/**
 * One `/infer` for every model: an LLM request is `{model?, version?, prompt, parameters?}` (the sampling parameters
 * of the generate extension — `max_tokens`, `temperature`, `top_p`, `top_k`, `seed`, `stop` … — in `parameters` or
 * beside `prompt`); without `model` it goes to the default LLM. It is answered once the text is complete, as
 * `{model, version, outputs: {text}, finish_reason, usage}`, through the same hooks, routers and admission as the
 * other generation routes.
 */
export function inferGeneration(
  generation: () => GenerationService | undefined,
  hooks: InferenceHooks,
  defaultModel: () => string | undefined,
) {
  const service = (): GenerationService => {
    const engine = generation();
    if (!engine) throw badRequest('invalid_body', 'inference request: this server runs no LLM to take a prompt');
    return engine;
  };
  return async (raw: unknown, ctx: RouteContext, signal: AbortSignal): Promise<InferGenerationAnswer> => {
    const body = { ...(raw as Record<string, unknown>) };
    if (body.model !== undefined && (typeof body.model !== 'string' || body.model === ''))
      throw badRequest('invalid_body', 'inference request: model must be a non-empty string', 'model');
    if (typeof body.prompt !== 'string')
      throw badRequest(
        'invalid_body',
        body.prompt === undefined
          ? `inference request: model '${String(body.model)}' is an LLM; send its input as 'prompt' (a string), not as tensors`
          : `inference request: prompt must be a string, got ${(JSON.stringify(body.prompt) ?? '').slice(0, 80)}`,
        'prompt',
      );
    const model = typeof body.model === 'string' ? body.model : defaultModelOf(service(), defaultModel());
    const version = body.version === undefined ? undefined : String(body.version);
    return (await hooks.run(
      { model, ...(version !== undefined && { version }), body: { ...body, model } },
      ctx.headers,
      async (routed) => {
        const engine = service();
        generationModel(engine, routed.model, routed.version);
        const { model: _m, version: _v, prompt, ...rest } = routed.body;
        const { request } = parseGenerateBody(routed.model, { ...rest, text_input: prompt });
        const id = requestId(ctx);
        const stream = await engine.generate(
          {
            ...request,
            ...(routed.version !== undefined && { version: routed.version }),
            ...tenancyOf(ctx),
            ...(id !== undefined && { requestId: id }),
            buffered: true,
          },
          signal,
        );
        let text = '';
        let finishReason: FinishReason = 'stop';
        let usage = { promptTokens: stream.promptTokens, completionTokens: 0, totalTokens: stream.promptTokens };
        for await (const event of stream) {
          if (event.type === 'token') text += event.text;
          else if (event.type === 'finish') {
            text += event.text;
            finishReason = event.finishReason;
          } else usage = event.usage;
        }
        return {
          model: stream.model,
          version: stream.version ?? GENERATION_VERSION,
          outputs: { text },
          finish_reason: finishReason,
          usage: {
            prompt_tokens: usage.promptTokens,
            completion_tokens: usage.completionTokens,
            total_tokens: usage.totalTokens,
          },
        };
      },
      ctx,
    )) as InferGenerationAnswer;
  };
}
