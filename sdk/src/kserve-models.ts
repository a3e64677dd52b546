import { notFound } from './errors.js';
import type { GenerationModelInfo, GenerationService } from './generation.js';
import type { InferenceService, TensorMetadata } from './inference.js';
import { kserveDatatype } from './kserve-datatypes.js';

/**
 * The models of the Open Inference Protocol (KServe v2) as every API that speaks it describes them — HTTP
 * `GET /v2/models/{m}` and gRPC `ModelMetadata` give the same answer — over the tensor engine and the generation engine.
 */

/** The platform v2 metadata reports for a tensor model. */
export const TENSOR_PLATFORM = 'onnxruntime_onnx';
/** The platform v2 metadata reports for a model the generation engine serves. */
export const LLM_PLATFORM = 'nucleus_llm';
/** The version a generation model is served under when it was given no label of its own. */
export const GENERATION_VERSION = '1';

/** The engines a v2 API answers from; the generation engine may be absent. */
export interface KServeEngines {
  inference(): InferenceService;
  generation(): GenerationService | undefined;
}

/** The generation model `name` addressed at `version` (default: its default version); 404 when there is none. */
export function generationModel(
  generation: GenerationService | undefined,
  name: string,
  version: string | undefined,
): GenerationModelInfo {
  if (!generation) throw notFound('model_not_found', `no model named '${name}'`);
  const info = generation.get(name, version);
  // An engine without versions serves each model as version 1 only.
  if (version !== undefined && (info.version ?? GENERATION_VERSION) !== version) {
    throw notFound(
      'version_not_found',
      `model '${name}' has no version '${version}' (versions: ${info.version ?? GENERATION_VERSION})`,
    );
  }
  return info;
}

/** The generation model a v2 request names, when no tensor model has that name (the tensor model wins). */
export function generationOnly(
  engines: KServeEngines,
  name: string,
  version: string | undefined,
): GenerationModelInfo | undefined {
  if (
    engines
      .inference()
      .list()
      .some((m) => m.name === name)
  )
    return undefined;
  const llms = engines.generation();
  if (!llms?.list().some((m) => m.name === name)) return undefined;
  return generationModel(llms, name, version);
}

/**
 * v2 model metadata of an LLM, in the shape Triton's LLM backends (vLLM, TensorRT-LLM) give: the prompt goes in as
 * the string tensor `text_input`, the text comes out as `text_output`; `stream`, `sampling_parameters` and
 * `exclude_input_in_output` are the optional inputs of the vLLM backend.
 */
export function llmMetadata(info: GenerationModelInfo, versions?: readonly string[]): Record<string, unknown> {
  return {
    name: info.name,
    versions: versions && versions.length > 0 ? [...versions] : [info.version ?? GENERATION_VERSION],
    platform: LLM_PLATFORM,
    inputs: [
      { name: 'text_input', datatype: 'BYTES', shape: [1] },
      { name: 'stream', datatype: 'BOOL', shape: [1] },
      { name: 'sampling_parameters', datatype: 'BYTES', shape: [1] },
      { name: 'exclude_input_in_output', datatype: 'BOOL', shape: [1] },
    ],
    outputs: [{ name: 'text_output', datatype: 'BYTES', shape: [-1] }],
  };
}

/** A tensor as v2 metadata lists it. */
export function tensorMetadata(t: TensorMetadata): { name: string; datatype: string; shape: number[] } {
  return { name: t.name, datatype: kserveDatatype(t.dtype), shape: t.shape };
}

/** v2 model metadata of model `name`: the version asked for, or every ready one (all of an LLM's versions). */
export function kserveModelMetadata(
  engines: KServeEngines,
  name: string,
  version: string | undefined,
): Record<string, unknown> {
  const llm = generationOnly(engines, name, version);
  if (llm) {
    const all = engines.generation()?.listVersions?.() ?? [];
    const versions = all.filter((m) => m.name === name).map((m) => m.version ?? GENERATION_VERSION);
    return llmMetadata(llm, version === undefined ? versions : [version]);
  }
  const engine = engines.inference();
  const info = engine.get(name, version);
  const versions =
    version !== undefined
      ? [info.version]
      : engine
          .model(name)
          .versions.filter((v) => v.state === 'ready')
          .map((v) => v.version);
  return {
    name,
    versions,
    platform: TENSOR_PLATFORM,
    inputs: info.inputs.map(tensorMetadata),
    outputs: info.outputs.map(tensorMetadata),
  };
}
