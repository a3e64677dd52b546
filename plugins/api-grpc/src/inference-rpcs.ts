import type { ServerDuplexStream, UntypedServiceImplementation } from '@grpc/grpc-js';
import {
  GENERATION_VERSION,
  generationOnly as generationOnlyOf,
  kserveModelMetadata,
  toNucleusError,
  type GenerationModelInfo,
  type GenerationService,
  type InferenceHooks,
  type InferenceService,
  type ModelRegistry,
  type Readiness,
} from '@nucleus/sdk';
import { parseGeneration, startGeneration, textResponse, texts } from './generation-rpcs.js';
import { invalidArgument } from './grpc-errors.js';
import type { ModelInferRequest, ModelInferResponse } from './messages.js';
import { SERVICE, type RpcCall, type RpcGate } from './rpc-gate.js';
import { decodeInputs, encodeOutputs } from './tensor-contents.js';

/** What the RPCs run on: the kernel's engines, each possibly absent in a bare kernel. */
export interface Engines {
  inference(): InferenceService;
  generation(): GenerationService | undefined;
  models(): ModelRegistry | undefined;
  readiness: Readiness | undefined;
}

/** What ServerMetadata reports. */
export interface ServerIdentity {
  name: string;
  version: string;
}

interface NamedRequest {
  name: string;
  version: string;
}

/** A model's name from a request, or 400 when it is empty (proto3 cannot tell "absent" from ""). */
function modelName(name: string, field: string): string {
  if (!name) throw invalidArgument('missing_model', `${field} is required`, field);
  return name;
}

/** Whether a stream of responses can take more now; else waits for it to drain (or for the call to end). */
async function writeTo(
  stream: ServerDuplexStream<unknown, unknown>,
  message: unknown,
  signal: AbortSignal,
): Promise<void> {
  // A call already cancelled never drains, and its signal will not fire again: waiting would hold the call forever.
  if (stream.write(message) || signal.aborted) return;
  await new Promise<void>((resolve) => {
    const done = () => {
      stream.off('drain', done);
      signal.removeEventListener('abort', done);
      resolve();
    };
    stream.once('drain', done);
    signal.addEventListener('abort', done, { once: true });
  });
}

/** The GRPCInferenceService handlers, each entered through the gate (key check, admission, deadline, events). */
export function inferenceRpcs(
  gate: RpcGate,
  engines: Engines,
  identity: ServerIdentity,
  hooks: InferenceHooks,
): UntypedServiceImplementation {
  // The generation model under a name no tensor model has (a tensor model of that name comes first), as REST finds it.
  const generationOnly = (name: string, version: string | undefined): GenerationModelInfo | undefined =>
    generationOnlyOf(engines, name, version);

  const serverReady = (): boolean => {
    const phase = engines.readiness?.report().status;
    if (phase === 'starting' || phase === 'stopping') return false;
    const versions = engines
      .inference()
      .list()
      .flatMap((m) => m.versions);
    return !versions.some((v) => v.state === 'loading' || v.state === 'failed');
  };

  const metadata = ({ name, version: asked }: NamedRequest) => {
    modelName(name, 'name');
    return kserveModelMetadata(engines, name, asked || undefined);
  };

  const modelReady = ({ name, version: asked }: NamedRequest) => {
    modelName(name, 'name');
    const version = asked || undefined;
    // A built-in generation model not started yet (idle) takes requests: it starts on the first.
    const info = generationOnly(name, version) ?? engines.inference().get(name, version);
    return { ready: info.state === 'ready' || info.state === 'idle' };
  };

  // One inference on a tensor model, after the hooks and routers chose the model and version.
  const runTensor = async (
    name: string,
    version: string | undefined,
    request: ModelInferRequest,
    call: RpcCall,
    signal: AbortSignal,
  ): Promise<ModelInferResponse> => {
    const engine = engines.inference();
    const info = engine.get(name, version);
    const inputs = decodeInputs(request, info);
    const wanted = request.outputs.length > 0 ? request.outputs.map((o) => o.name) : undefined;
    const result = await engine.infer({
      model: name,
      ...(version !== undefined && { version }),
      inputs,
      ...(wanted && { outputs: wanted }),
      signal,
      requestId: call.requestId,
    });
    const order = wanted ?? info.outputs.map((t) => t.name);
    return {
      model_name: result.model,
      model_version: result.version,
      id: request.id,
      ...encodeOutputs(result.outputs, order, request.raw_input_contents.length > 0),
    };
  };

  // The whole text of a generation model's answer as one response (Triton's non-decoupled LLM models).
  const runGeneration = async (
    name: string,
    version: string | undefined,
    request: ModelInferRequest,
    call: RpcCall,
    signal: AbortSignal,
  ): Promise<ModelInferResponse> => {
    const parsed = parseGeneration(name, version, request);
    const stream = await startGeneration(engines.generation()!, parsed, call, signal);
    let text = parsed.includeInput ? (parsed.request.prompt as string) : '';
    for await (const piece of texts(stream)) text += piece;
    return textResponse(stream, request.id, text, request.raw_input_contents.length > 0);
  };

  const exchange = (call: RpcCall) => ({ path: `/${SERVICE}/${call.rpc}`, set: call.setTrailer });

  // ModelInfer through the same hooks and routers as REST inference (A/B, canary, shadow, caches see `path`).
  const modelInfer = (
    request: ModelInferRequest,
    call: RpcCall,
    signal: AbortSignal = call.signal,
  ): Promise<ModelInferResponse> => {
    const name = modelName(request.model_name, 'model_name');
    const version = request.model_version || undefined;
    const addressed = {
      model: name,
      ...(version !== undefined && { version }),
      body: request as unknown as Record<string, unknown>,
    };
    return hooks.run(
      addressed,
      call.headers,
      async (routed) => {
        const body = routed.body as unknown as ModelInferRequest;
        const run = generationOnly(routed.model, routed.version) ? runGeneration : runTensor;
        return (await run(routed.model, routed.version, body, call, signal)) as unknown as Record<string, unknown>;
      },
      exchange(call),
    ) as unknown as Promise<ModelInferResponse>;
  };

  // One request of a stream: a generation model answers with a response per piece of text, a tensor model with one.
  const streamOne = async (
    stream: ServerDuplexStream<ModelInferRequest, unknown>,
    request: ModelInferRequest,
    call: RpcCall,
  ): Promise<void> => {
    const name = modelName(request.model_name, 'model_name');
    const version = request.model_version || undefined;
    if (!generationOnly(name, version)) {
      await writeTo(stream, { infer_response: await modelInfer(request, call) }, call.signal);
      return;
    }
    await hooks.run(
      { model: name, ...(version !== undefined && { version }), body: request as unknown as Record<string, unknown> },
      call.headers,
      async (routed) => {
        const parsed = parseGeneration(routed.model, routed.version, routed.body as unknown as ModelInferRequest);
        const generation = await startGeneration(engines.generation()!, parsed, call);
        const raw = request.raw_input_contents.length > 0;
        const send = (text: string) =>
          writeTo(stream, { infer_response: textResponse(generation, request.id, text, raw) }, call.signal);
        if (parsed.includeInput && parsed.request.prompt !== '') await send(parsed.request.prompt as string);
        for await (const piece of texts(generation)) await send(piece);
        if (parsed.finalResponse) {
          const last = textResponse(generation, request.id, '', raw);
          await writeTo(
            stream,
            {
              infer_response: {
                ...last,
                outputs: [],
                raw_output_contents: [],
                parameters: { triton_final_response: { bool_param: true } },
              },
            },
            call.signal,
          );
        }
        return undefined;
      },
      exchange(call),
    );
  };

  // Triton's ModelStreamInfer: requests run as they come (each answered with its `id`); one that fails answers with
  // `error_message` and the stream goes on. The stream ends once the client has sent all and every answer is out.
  const modelStreamInfer = async (
    stream: ServerDuplexStream<ModelInferRequest, unknown>,
    call: RpcCall,
  ): Promise<void> => {
    const running = new Set<Promise<void>>();
    const one = (request: ModelInferRequest) => {
      const task = streamOne(stream, request, call)
        .catch(async (err) => {
          if (call.signal.aborted) return;
          const error = toNucleusError(err);
          await writeTo(
            stream,
            {
              error_message: error.message,
              infer_response: { model_name: request.model_name, model_version: request.model_version, id: request.id },
            },
            call.signal,
          );
        })
        .finally(() => running.delete(task));
      running.add(task);
    };
    stream.on('data', one);
    await new Promise<void>((resolve, reject) => {
      stream.once('end', resolve);
      stream.once('error', reject);
      call.signal.addEventListener('abort', () => resolve(), { once: true });
    });
    stream.off('data', one);
    while (running.size > 0) await Promise.all(running);
  };

  const repositoryIndex = async ({ ready }: { ready: boolean }) => {
    const rows = await engines.inference().index();
    const tensor = rows
      .filter((r) => !ready || r.state === 'ready')
      .map((r) => ({ name: r.name, version: r.version, state: r.state.toUpperCase(), reason: r.reason ?? '' }));
    const names = new Set(rows.map((r) => r.name));
    const llmEngine = engines.generation();
    const llms = (llmEngine?.listVersions?.() ?? llmEngine?.list() ?? [])
      .filter((m) => !names.has(m.name))
      .map((m) => ({
        name: m.name,
        version: m.version ?? GENERATION_VERSION,
        state: m.state === 'idle' || m.state === 'ready' ? 'READY' : m.state === 'loading' ? 'LOADING' : 'UNAVAILABLE',
        reason: m.reason ?? '',
      }))
      .filter((r) => !ready || r.state === 'READY');
    return { models: [...tensor, ...llms].sort((a, b) => a.name.localeCompare(b.name)) };
  };

  const load = async ({ model_name }: { model_name: string }) => {
    const name = modelName(model_name, 'model_name');
    const registry = engines.models();
    if (registry) await registry.load({ name });
    else await engines.inference().load(name);
    return {};
  };

  const unload = async ({ model_name }: { model_name: string }) => {
    const name = modelName(model_name, 'model_name');
    const registry = engines.models();
    if (registry) await registry.unload(name);
    else await engines.inference().unload(name);
    return {};
  };

  return {
    ServerLive: gate.unary('ServerLive', 'public', () => ({ live: true })),
    ServerReady: gate.unary('ServerReady', 'public', () => ({ ready: serverReady() })),
    ServerMetadata: gate.unary('ServerMetadata', 'public', () => ({ ...identity, extensions: ['model_repository'] })),
    ModelReady: gate.unary('ModelReady', 'user', modelReady),
    ModelMetadata: gate.unary('ModelMetadata', 'user', metadata),
    ModelInfer: gate.unary('ModelInfer', 'user', (request: ModelInferRequest, call) => modelInfer(request, call)),
    ModelStreamInfer: gate.bidi('ModelStreamInfer', 'user', modelStreamInfer),
    RepositoryIndex: gate.unary('RepositoryIndex', 'admin', repositoryIndex),
    RepositoryModelLoad: gate.unary('RepositoryModelLoad', 'admin', load),
    RepositoryModelUnload: gate.unary('RepositoryModelUnload', 'admin', unload),
  } as UntypedServiceImplementation;
}
