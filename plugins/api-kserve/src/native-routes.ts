import {
  badRequest,
  elementCount,
  isTensorDataType,
  NucleusError,
  toNucleusError,
  type ExplainRequest,
  type Explanation,
  type GenerationService,
  type InferenceHooks,
  type InferenceService,
  type InferResult,
  type ModelVersionInfo,
  type Readiness,
  type RouteContext,
  type RouteContribution,
  type Tensor,
} from '@nucleus/sdk';
import { clientSignal, requestBody, requestId } from './http-helpers.js';
import { inferGeneration, isGenerationRequest } from './infer-generation.js';
import {
  BATCH_INFER_SCHEMA,
  checkBody,
  NATIVE_INFER_SCHEMA,
  validators,
  type NativeInferBody,
} from './request-schemas.js';
import { SseStream } from '@nucleus/sdk';
import { flatten, fromTensorData, nest, shapeOfNested, toTensorData } from './tensor-json.js';

function isFlatForm(value: unknown): value is { data: unknown; shape: unknown; dtype?: unknown } {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && 'data' in value;
}

/** Native inputs (nested lists, or `{data, shape, dtype?}`) as tensors of the dtypes the model declares. */
export function decodeNativeInputs(inputs: Record<string, unknown>, info: ModelVersionInfo): Record<string, Tensor> {
  const label = `model '${info.name}' version '${info.version}'`;
  const out: Record<string, Tensor> = {};
  for (const [name, value] of Object.entries(inputs)) {
    const meta = info.inputs.find((t) => t.name === name);
    if (!meta) {
      const expected = info.inputs.map((t) => `${t.name} (${t.dtype} [${t.shape.join(',')}])`).join(', ');
      throw badRequest('unknown_input', `${label} has no input named '${name}'; its inputs are ${expected}`, name);
    }
    let shape: number[];
    let values: unknown[];
    if (isFlatForm(value)) {
      const { data, shape: given, dtype } = value;
      if (!Array.isArray(given) || !given.every((d) => Number.isInteger(d) && d >= 0)) {
        throw badRequest(
          'invalid_shape',
          `input '${name}': shape must be a list of non-negative integers, got ${JSON.stringify(given)}`,
          name,
        );
      }
      if (dtype !== undefined && (!isTensorDataType(dtype) || dtype !== meta.dtype)) {
        throw badRequest(
          'invalid_datatype',
          `input '${name}' is ${String(dtype)}, but ${label} expects ${meta.dtype}`,
          name,
        );
      }
      shape = given as number[];
      values = flatten(data);
      if (values.length !== elementCount(shape)) {
        throw badRequest(
          'invalid_tensor_data',
          `input '${name}' has shape [${shape.join(',')}], which holds ${elementCount(shape)} values, but its data holds ${values.length}`,
          name,
        );
      }
    } else {
      shape = shapeOfNested(value, name);
      values = flatten(value);
    }
    out[name] = { dtype: meta.dtype, shape, data: toTensorData(values, meta.dtype, name) };
  }
  return out;
}

/** A result as `/infer` answers it: nested lists with their shapes and dtypes. */
export function encodeResult(result: InferResult): {
  model: string;
  version: string;
  outputs: Record<string, unknown>;
  shapes: Record<string, number[]>;
  dtypes: Record<string, string>;
} {
  const outputs: Record<string, unknown> = {};
  const shapes: Record<string, number[]> = {};
  const dtypes: Record<string, string> = {};
  for (const [name, t] of Object.entries(result.outputs)) {
    outputs[name] = nest(fromTensorData(t), t.shape);
    shapes[name] = t.shape;
    dtypes[name] = t.dtype;
  }
  return { model: result.model, version: result.version, outputs, shapes, dtypes };
}

/**
 * The native endpoints: `POST /infer` with nested lists, `POST /batch_infer` (each item answered on its own),
 * `POST /stream_infer` (each item sent as an SSE event as soon as it finishes), `GET /models` (tensor models, LLMs and
 * embedding models, each with its `kind`) and `GET /status`. An item with a `prompt` (or naming an LLM) is generated
 * by the LLM engine (see {@link inferGeneration}).
 */
export function nativeRoutes(
  service: () => InferenceService,
  hooks: InferenceHooks,
  generation?: () => GenerationService | undefined,
  readiness?: Readiness,
  defaultModel: () => string | undefined = () => undefined,
  explain?: (request: ExplainRequest) => Promise<Explanation>,
): RouteContribution[] {
  const llm = generation ? inferGeneration(generation, hooks, defaultModel) : undefined;
  const runOne = async (raw: unknown, ctx: RouteContext, signal: AbortSignal): Promise<Record<string, unknown>> => {
    if (llm && generation && isGenerationRequest(raw, service, generation)) return llm(raw, ctx, signal);
    // Only the address is checked before the hooks: a hook may build `inputs`; runRouted checks the rest.
    const checked = checkBody(validators.nativeAddress, raw, 'inference request');
    const request = {
      model: checked.model,
      ...(checked.version !== undefined && { version: String(checked.version) }),
      body: checked as Record<string, unknown>,
    };
    return hooks.run(
      request,
      ctx.headers,
      (routed) => runRouted(routed.model, routed.version, routed.body, ctx, signal),
      ctx,
    );
  };

  const runRouted = async (
    model: string,
    routedVersion: string | undefined,
    hooked: unknown,
    ctx: RouteContext,
    signal: AbortSignal,
  ) => {
    const body: NativeInferBody = { ...checkBody(validators.nativeInfer, hooked, 'inference request'), model };
    const engine = service();
    const version = routedVersion;
    const info = engine.get(body.model, version);
    const id = requestId(ctx);
    const inputs = decodeNativeInputs(body.inputs, info);
    const result = await engine.infer({
      model: body.model,
      ...(version !== undefined && { version }),
      inputs,
      ...(body.outputs && { outputs: body.outputs }),
      signal,
      ...(id !== undefined && { requestId: id }),
    });
    const answer = encodeResult(result) as unknown as Record<string, unknown>;
    if (body.explain !== true) return answer;
    if (!explain)
      throw new NucleusError(501, 'explainer_unavailable', 'explain: true needs an explainer plugin (model-insight)');
    const explanation = await explain({ model: result.model, version: result.version, inputs, signal });
    return { ...answer, explanation };
  };

  return [
    {
      method: 'POST',
      path: '/infer',
      doc: {
        summary: 'Run a tensor model: inputs by name, as nested lists or {data, shape, dtype}',
        tags: ['native'],
        body: NATIVE_INFER_SCHEMA,
      },
      handler: (ctx) => runOne(requestBody(ctx) ?? {}, ctx, clientSignal(ctx)),
    },
    {
      method: 'POST',
      path: '/batch_infer',
      doc: {
        summary: 'Several /infer requests at once, each answered on its own',
        tags: ['native'],
        body: BATCH_INFER_SCHEMA,
      },
      handler: async (ctx) => {
        const raw = requestBody(ctx);
        const body = checkBody(
          validators.batchInfer,
          Array.isArray(raw) ? { requests: raw } : (raw ?? {}),
          'batch request',
        );
        const signal = clientSignal(ctx);
        // Items run concurrently, so the batcher can put them in one batch; each fails on its own.
        const settled = await Promise.allSettled(body.requests.map((item) => runOne(item, ctx, signal)));
        return {
          results: settled.map((s) => {
            if (s.status === 'fulfilled') return { status: 200, ...s.value };
            const error = toNucleusError(s.reason);
            return { status: error.status, ...error.toBody() };
          }),
        };
      },
    },
    {
      method: 'POST',
      path: '/stream_infer',
      doc: {
        summary: 'Several /infer requests, each answer sent as a server-sent event as soon as it is ready',
        tags: ['native'],
        body: BATCH_INFER_SCHEMA,
      },
      handler: async (ctx) => {
        const raw = requestBody(ctx);
        const body = checkBody(
          validators.batchInfer,
          Array.isArray(raw) ? { requests: raw } : (raw ?? {}),
          'stream request',
        );
        const sse = SseStream.open(ctx);
        // Items run concurrently (so they batch together) and each is sent as soon as it settles, failing alone.
        let failed = 0;
        await Promise.all(
          body.requests.map(async (item, index) => {
            let event: Record<string, unknown>;
            try {
              event = { index, status: 200, ...(await runOne(item, ctx, sse.signal)) };
            } catch (err) {
              const error = toNucleusError(err);
              failed++;
              event = { index, status: error.status, ...error.toBody() };
            }
            await sse.send(event);
          }),
        );
        await sse.send({ count: body.requests.length, failed }, 'done');
        sse.end();
      },
    },
    {
      method: 'GET',
      path: '/models',
      handler: () => ({
        models: [
          ...service()
            .list()
            .map((m) => ({
              name: m.name,
              kind: 'tensor',
              ...(m.defaultVersion !== undefined && { defaultVersion: m.defaultVersion }),
              versions: m.versions.map(({ status: _status, ...v }) => v),
            })),
          // The LLMs and embedding models the generation engine serves (`idle`: a built-in that starts on its first request).
          ...(generation?.()?.list() ?? []).map((m) => ({
            name: m.name,
            kind: m.kind,
            state: m.state,
            ...(m.reason !== undefined && { reason: m.reason }),
            maxContext: m.maxContext,
            ...(m.dimensions !== undefined && { dimensions: m.dimensions }),
            chatTemplate: m.chatTemplate,
            ...(m.backend !== undefined && { backend: m.backend }),
            versions: [{ version: '1', state: m.state }],
          })),
        ],
      }),
    },
    {
      method: 'GET',
      path: '/status',
      handler: async () => {
        const engine = service();
        const models = engine.list().map((m) => ({
          name: m.name,
          ...(m.defaultVersion !== undefined && { defaultVersion: m.defaultVersion }),
          loadedVersions: m.versions.filter((v) => v.state === 'ready').map((v) => v.version),
          versions: m.versions.map((v) => ({
            version: v.version,
            state: v.state,
            ...(v.reason !== undefined && { reason: v.reason }),
            ...(v.status && {
              backend: v.status.backend,
              requestedBackend: v.status.requestedBackend,
              ...(v.status.fallbackReason !== undefined && { fallbackReason: v.status.fallbackReason }),
              queue: { queued: v.status.queued, inFlight: v.status.inFlight },
              workers: {
                count: v.status.workers,
                restarts: v.status.workerRestarts,
                ...(v.status.isolation !== undefined && { isolation: v.status.isolation }),
                ...(v.status.replicas && { replicas: v.status.replicas }),
              },
              requests: { total: v.status.requests, failed: v.status.failures },
              batches: { total: v.status.batches, meanSize: v.status.meanBatchSize },
              ...(v.status.breaker && { breaker: v.status.breaker }),
            }),
            ...(v.batching && { batching: v.batching }),
          })),
        }));
        // The models the generation engine serves: LLMs with their circuit breakers and replicas, and embedding models;
        // each with the backend it runs on, as a tensor model's version reports it.
        const served = (generation?.()?.list() ?? []).map((m) => ({
          kind: m.kind,
          entry: {
            name: m.name,
            state: m.state,
            ...(m.reason !== undefined && { reason: m.reason }),
            // A model that failed to load: when a request may try it again.
            ...(m.loadRetry && { loadRetry: m.loadRetry }),
            ...(m.backend !== undefined && { backend: m.backend }),
            ...(m.requestedBackend !== undefined && { requestedBackend: m.requestedBackend }),
            ...(m.fallbackReason !== undefined && { fallbackReason: m.fallbackReason }),
            ...(m.graphStyle !== undefined && { graphStyle: m.graphStyle }),
            running: m.running,
            waiting: m.waiting,
            ...(m.breaker && { breaker: m.breaker }),
            ...(m.stepRecovery && { stepRecovery: m.stepRecovery }),
            ...(m.workers && { workers: m.workers }),
          },
        }));
        const llms = served.filter((m) => m.kind === 'llm').map((m) => m.entry);
        const embeddings = served.filter((m) => m.kind === 'embedding').map((m) => m.entry);
        // Traffic policies (A/B splits, canaries, shadows) as the routers that apply them see them now.
        const traffic = hooks.status();
        return {
          models,
          llms,
          embeddings,
          backends: await engine.backends(),
          ...(readiness && { readiness: readiness.report() }),
          ...(Object.keys(traffic).length > 0 && { traffic }),
        };
      },
    },
  ];
}
