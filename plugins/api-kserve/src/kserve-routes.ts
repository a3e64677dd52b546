import {
  badRequest,
  elementCount,
  NucleusError,
  type GenerationModelInfo,
  type GenerationService,
  type InferenceHooks,
  type InferenceService,
  type ModelRegistry,
  type ModelVersionInfo,
  type RouteContext,
  type RouteContribution,
  type Tensor,
  generationOnly as generationOnlyOf,
  type KServeEngines,
  kserveModelMetadata,
  TENSOR_PLATFORM,
} from '@nucleus/sdk';
import {
  attachBinaryInputs,
  BINARY_EXTENSION,
  binaryResponse,
  binaryTensorData,
  isBinaryInput,
  tensorBytes,
  wantsBinary,
} from './binary-tensors.js';
import { GENERATION_VERSION } from './generate-routes.js';
import { binaryData, clientSignal, requestBody, requestId } from './http-helpers.js';
import { kserveDatatype, SUPPORTED_DATATYPES, tensorDataType } from './kserve-datatypes.js';
import { checkBody, KSERVE_INFER_SCHEMA, validators, type KServeInferBody } from './request-schemas.js';
import { fromTensorData, tensorValues, toTensorData } from './tensor-json.js';

/** The platform string the protocol reports for ONNX models. */
export const PLATFORM = TENSOR_PLATFORM;

/** What GET /v2 reports. */
export interface ServerIdentity {
  name: string;
  version: string;
}

function describeInputs(info: ModelVersionInfo): string {
  return info.inputs.map((t) => `${t.name} (${kserveDatatype(t.dtype)} [${t.shape.join(',')}])`).join(', ');
}

/** Turns a v2 request's inputs into tensors, checking names and datatypes against the model in protocol terms. */
export function decodeInputs(body: KServeInferBody, info: ModelVersionInfo): Record<string, Tensor> {
  const label = `model '${info.name}' version '${info.version}'`;
  const inputs: Record<string, Tensor> = {};
  for (const input of body.inputs) {
    if (inputs[input.name]) throw badRequest('duplicate_input', `input '${input.name}' is given twice`, input.name);
    const meta = info.inputs.find((t) => t.name === input.name);
    if (!meta && info.inputs.length > 0) {
      throw badRequest(
        'unknown_input',
        `${label} has no input named '${input.name}'; its inputs are ${describeInputs(info)}`,
        input.name,
      );
    }
    const dtype = tensorDataType(input.datatype);
    if (dtype === undefined) {
      throw badRequest(
        'invalid_datatype',
        `input '${input.name}' has datatype '${input.datatype}', which this server does not serve (it serves ${SUPPORTED_DATATYPES.join(', ')})`,
        input.name,
      );
    }
    if (meta && meta.dtype !== dtype) {
      throw badRequest(
        'invalid_datatype',
        `input '${input.name}' has datatype ${input.datatype}, but ${label} expects ${kserveDatatype(meta.dtype)}`,
        input.name,
      );
    }
    const count = elementCount(input.shape);
    if (isBinaryInput(input) && ArrayBuffer.isView(input.data)) {
      // Sizes were checked against the shape when the bytes were taken from the body.
      inputs[input.name] = {
        dtype,
        shape: input.shape,
        data: binaryTensorData(input.data, dtype, input.name, input.datatype),
      };
      continue;
    }
    const values = tensorValues(input.data);
    if (values.length !== count) {
      throw badRequest(
        'invalid_tensor_data',
        `input '${input.name}' has shape [${input.shape.join(',')}], which holds ${count} values, but its data holds ${values.length}`,
        input.name,
      );
    }
    inputs[input.name] = { dtype, shape: input.shape, data: toTensorData(values, dtype, input.name, input.datatype) };
  }
  return inputs;
}

/**
 * The Open Inference Protocol v2 REST routes: server and model health and metadata, inference, and the model
 * repository extension (admin only).
 */
export function kserveRoutes(
  service: () => InferenceService,
  identity: ServerIdentity,
  hooks: InferenceHooks,
  generation: () => GenerationService | undefined = () => undefined,
  models: () => ModelRegistry | undefined = () => undefined,
): RouteContribution[] {
  const versionOf = (ctx: RouteContext): string | undefined => ctx.params.version;

  const engines: KServeEngines = { inference: service, generation };
  // The LLM or embedding model under a name no tensor model has (a tensor model of that name comes first).
  const generationOnly = (name: string, version: string | undefined): GenerationModelInfo | undefined =>
    generationOnlyOf(engines, name, version);

  const metadata = (ctx: RouteContext) => kserveModelMetadata(engines, ctx.params.model!, versionOf(ctx));

  const modelReady = (ctx: RouteContext) => {
    const name = ctx.params.model!;
    // A built-in generation model that has not started yet (idle) takes requests: it starts on the first.
    const info = generationOnly(name, versionOf(ctx)) ?? service().get(name, versionOf(ctx));
    const ready = info.state === 'ready' || info.state === 'idle';
    ctx.status = ready ? 200 : 503;
    ctx.body = {
      name,
      ...(versionOf(ctx) !== undefined && { version: 'version' in info ? info.version : GENERATION_VERSION }),
      ready,
      ...(!ready && {
        error: {
          message: `model '${name}' version '${'version' in info ? info.version : GENERATION_VERSION}' is ${info.state}${info.reason ? `: ${info.reason}` : ''}`,
          type: 'unavailable_error',
          code: 'model_not_ready',
        },
      }),
    };
  };

  const infer = async (ctx: RouteContext) => {
    // Only the envelope is checked before the hooks: a hook may build `inputs`; runInfer checks the rest.
    const raw = checkBody(validators.kserveEnvelope, requestBody(ctx) ?? {}, 'inference request');
    // Binary inputs get their data (viewed over the received bytes) before the hooks, so a hook sees every tensor.
    attachBinaryInputs(raw, binaryData(ctx));
    const addressed = versionOf(ctx);
    const request = { model: ctx.params.model!, ...(addressed !== undefined && { version: addressed }), body: raw };
    const response = await hooks.run(
      request,
      ctx.headers,
      ({ model, version, body }) => runInfer(ctx, model, version, body),
      ctx,
    );
    const binary = binaryResponse(response);
    if (!binary) return response;
    ctx.set('Inference-Header-Content-Length', String(binary.headerLength));
    ctx.type = 'application/octet-stream';
    ctx.body = binary.body;
    return undefined;
  };

  const runInfer = async (ctx: RouteContext, name: string, version: string | undefined, hooked: unknown) => {
    const engine = service();
    // The tensor model is looked up first: finding it is cheaper than listing every model to learn it is no LLM.
    const found = tensorVersion(engine, name, version);
    if (!found && generationOnly(name, version)) {
      throw badRequest(
        'model_cannot_infer',
        `model '${name}' is served by the generation engine; send its text to POST /v2/models/${name}/generate or /generate_stream`,
        'model',
      );
    }
    const body = checkBody(validators.kserveInfer, hooked, 'inference request');
    // An unknown model or version answers 404 here, after a body that is not valid has had its 400.
    const info = found ?? engine.get(name, version);
    const inputs = decodeInputs(body, info);
    const wanted = body.outputs?.map((o) => o.name);
    const result = await engine.infer({
      model: name,
      ...(version !== undefined && { version }),
      inputs,
      ...(wanted && { outputs: wanted }),
      signal: clientSignal(ctx),
      ...(requestId(ctx) !== undefined && { requestId: requestId(ctx)! }),
    });
    const order = wanted ?? info.outputs.map((t) => t.name);
    return {
      model_name: result.model,
      model_version: result.version,
      ...(body.id !== undefined && { id: body.id }),
      outputs: order
        .filter((n) => result.outputs[n] !== undefined)
        .map((n) => {
          const t = result.outputs[n]!;
          const head = { name: n, datatype: kserveDatatype(t.dtype), shape: t.shape };
          // A binary output keeps its typed array until the response is written, where its bytes go behind the JSON.
          if (wantsBinary(body, n))
            return { ...head, parameters: { binary_data_size: tensorBytes(t).byteLength }, data: t.data };
          return { ...head, data: fromTensorData(t) };
        }),
    };
  };

  const serverReady = (ctx: RouteContext) => {
    const versions = service()
      .list()
      .flatMap((m) => m.versions);
    const blocking = versions.filter((v) => v.state === 'loading' || v.state === 'failed');
    const ready = blocking.length === 0;
    ctx.status = ready ? 200 : 503;
    ctx.body = {
      ready,
      ...(!ready && {
        error: {
          message: `not ready: ${blocking.map((v) => `model '${v.name}' version '${v.version}' is ${v.state}${v.reason ? ` (${v.reason})` : ''}`).join('; ')}`,
          type: 'unavailable_error',
          code: 'server_not_ready',
        },
      }),
    };
  };

  const repositoryIndex = async (ctx: RouteContext) => {
    const body = checkBody(validators.repositoryIndex, requestBody(ctx) ?? {}, 'repository index request');
    const rows = await service().index();
    const tensor = rows
      .filter((r) => body.ready !== true || r.state === 'ready')
      .map((r) => ({
        name: r.name,
        version: r.version,
        state: r.state.toUpperCase(),
        ...(r.reason !== undefined && { reason: r.reason }),
      }));
    // The generation engine's models too, under names no tensor model has; an idle built-in takes requests (READY).
    const names = new Set(rows.map((r) => r.name));
    const llmEngine = generation();
    const llms = (llmEngine?.listVersions?.() ?? llmEngine?.list() ?? [])
      .filter((m) => !names.has(m.name))
      .map((m) => ({
        name: m.name,
        version: m.version ?? GENERATION_VERSION,
        state: repositoryState(m.state),
        ...(m.reason !== undefined && { reason: m.reason }),
      }))
      .filter((r) => body.ready !== true || r.state === 'READY');
    // A stable sort by name keeps each tensor model's versions in the engine's order.
    return [...tensor, ...llms].sort((a, b) => a.name.localeCompare(b.name));
  };

  const routes: RouteContribution[] = [
    {
      method: 'GET',
      path: '/v2',
      access: 'public',
      handler: () => ({
        name: identity.name,
        version: identity.version,
        extensions: ['model_repository', BINARY_EXTENSION],
      }),
    },
    { method: 'GET', path: '/v2/health/live', access: 'public', handler: () => ({ live: true }) },
    { method: 'GET', path: '/v2/health/ready', access: 'public', handler: serverReady },
    { method: 'POST', path: '/v2/repository/index', access: 'admin', readOnly: true, handler: repositoryIndex },
    {
      method: 'POST',
      path: '/v2/repository/models/:model/load',
      access: 'admin',
      handler: async (ctx) => {
        // Through the model registry when the server has one, so LLMs load too and lifecycle events follow.
        const registry = models();
        if (registry) await registry.load({ name: ctx.params.model! });
        else await service().load(ctx.params.model!);
        return {};
      },
    },
    {
      method: 'POST',
      path: '/v2/repository/models/:model/unload',
      access: 'admin',
      handler: async (ctx) => {
        const registry = models();
        if (registry) await registry.unload(ctx.params.model!);
        else await service().unload(ctx.params.model!);
        return {};
      },
    },
  ];
  for (const base of ['/v2/models/:model', '/v2/models/:model/versions/:version']) {
    routes.push(
      {
        method: 'GET',
        path: base,
        doc: { summary: "A model's metadata: inputs, outputs, platform", tags: ['kserve-v2'] },
        handler: metadata,
      },
      {
        method: 'GET',
        path: `${base}/ready`,
        doc: { summary: 'Whether the model is ready', tags: ['kserve-v2'] },
        handler: modelReady,
      },
      {
        method: 'POST',
        path: `${base}/infer`,
        doc: {
          summary:
            'Inference (Open Inference Protocol v2); binary tensors with the Inference-Header-Content-Length header',
          tags: ['kserve-v2'],
          body: KSERVE_INFER_SCHEMA,
          bodyContentTypes: ['application/octet-stream'],
        },
        handler: infer,
      },
    );
  }
  return routes;
}

/** A generation model's state as the repository extension names states. */
function repositoryState(state: GenerationModelInfo['state']): string {
  if (state === 'idle' || state === 'ready') return 'READY';
  if (state === 'loading') return 'LOADING';
  return 'UNAVAILABLE';
}

/** The error a route answers when the engine is not there (the kernel registered no inference service). */
/** A tensor model's version as `get` finds it, or undefined where `get` answers 404. */
function tensorVersion(engine: InferenceService, name: string, version: string | undefined) {
  try {
    // Its signature is all the route reads: not the live counters `get` builds.
    return engine.describe?.(name, version) ?? engine.get(name, version);
  } catch (err) {
    if ((err as { status?: unknown } | undefined)?.status === 404) return undefined;
    throw err;
  }
}

export function noEngine(): NucleusError {
  return new NucleusError(503, 'engine_unavailable', 'the inference engine is not running in this server');
}
