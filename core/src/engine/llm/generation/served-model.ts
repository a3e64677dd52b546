import type { GenerationModelInfo, QuantizeSetting, Sha256Pin } from '@nucleus/sdk';
import type { CircuitBreaker } from '../../circuit-breaker.js';
import type { LoadBackoff } from '../../load-backoff.js';
import type { ConfiguredModel } from '../../model-repository.js';
import type { GraphStyle } from '../graph-style.js';
import type { GenerationThreadSpec } from './generation-messages.js';
import type { GenerationReplicas } from './generation-replicas.js';
import type { ReplicaTelemetry } from './replica-telemetry.js';

/** The model-specific part of a thread spec; backend and scheduler are added when the worker starts. */
export type ModelSpec = Pick<GenerationThreadSpec, 'onnxPath' | 'role' | 'decoder' | 'encoder'> & {
  /** The draft model of draft-model speculation (`models[].speculation`), loaded beside the model. */
  draft?: NonNullable<GenerationThreadSpec['speculative']>['draft'];
};

/** An LLM to open while serving, as a `models[]` config entry gives it. */
export type LlmModelSpec = Pick<
  ConfiguredModel,
  | 'name'
  | 'path'
  | 'backend'
  | 'quantize'
  | 'graphStyle'
  | 'speculative'
  | 'workers'
  | 'isolation'
  | 'tokenizer'
  | 'chatTemplate'
  | 'sha256'
  | 'warmup'
  | 'version'
>;

export interface ServedModel {
  name: string;
  kind: 'llm' | 'embedding';
  origin: 'builtin' | 'config' | 'runtime';
  /** The config entry's or load's label; otherwise '1' when first opened, one more at each swap. */
  version: string;
  /** The file or folder it loads from (configured and run-time models). */
  path?: string;
  /** How it was loaded at run time; its settings stand in for a `models[]` entry of the config. */
  spec?: LlmModelSpec;
  /** Swapped out or unloaded: new requests go to its successor (or get 404) while it drains. */
  retired?: boolean;
  created: number;
  state: GenerationModelInfo['state'];
  reason?: string;
  /** The code of the error that failed it. */
  errorCode?: string;
  /** Known before the model is open (built-ins); the worker's report replaces it. */
  maxContext: number;
  dimensions?: number;
  chatTemplate: boolean;
  backend?: string;
  /** The backend its sessions run on once open, what was asked for, and why they run elsewhere when they do. */
  running?: { backend: string; requested: string; fallbackReason?: string };
  /** How its graph runs, once prepared (LLMs). */
  graphStyle?: GraphStyle;
  /** The graph and settings to run, for the backend the session is opened on. */
  prepare(backend: string): Promise<ModelSpec>;
  /** The prefix cache's budget as configured (memory pressure lowers what applies); absent without a cache. */
  cacheBytes?: number;
  /** Fails generations fast (503 `circuit_open`) while the model keeps failing. */
  breaker: CircuitBreaker;
  /** After a failed load, when requests may start the next attempt (`breaker.loadBackoffMs`). */
  loadBackoff: LoadBackoff;
  /** Its workers once started: one per replica (`workers.perModel`, `models[].workers`). */
  replicas?: GenerationReplicas;
  starting?: Promise<GenerationReplicas>;
  /** Its replicas' cache, speculation and recovery totals. */
  telemetry: ReplicaTelemetry;
}

/** A served model before the engine gives it its breaker, load back-off and telemetry. */
export type ModelDraft = Omit<ServedModel, 'breaker' | 'loadBackoff' | 'telemetry'>;

/** A `models[]` entry the generation engine serves. */
export interface ConfiguredLlm {
  name: string;
  path: string;
  backend?: string;
  graphStyle?: GraphStyle;
  quantize?: QuantizeSetting;
  /** Replaces the model's own chat template. */
  chatTemplate?: string;
  /** The source's SHA-256 pin: one digest, or a folder's by file (`models[].sha256`). */
  sha256?: Sha256Pin;
  /** Format-specific keys (`tokenizer` …), handed to the format. */
  [key: string]: unknown;
}

/** The health condition a model's backend fallback is reported under, as for a tensor model's version. */
export function backendKey(name: string, version = '1'): string {
  return `backend:${name}@${version}`;
}

/** The health condition a configured model that failed to load is reported under, as for a tensor model's version. */
export function modelKey(name: string, version = '1'): string {
  return `model:${name}@${version}`;
}

/** The health condition of an open circuit breaker: version 1 keeps the key a model of one version always had. */
export function breakerKey(name: string, version = '1'): string {
  return version === '1' ? `breaker:${name}` : `breaker:${name}@${version}`;
}

/** Now, in seconds, as `created` gives it. */
export function nowS(): number {
  return Math.floor(Date.now() / 1000);
}
