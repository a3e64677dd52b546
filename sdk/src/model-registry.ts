/** A model's SHA-256 pin: the hex digest of a single file, or of each named file of a folder (paths inside it). */
export type Sha256Pin = string | Readonly<Record<string, string>>;

/** `models[].quantize`: the name of a `modelTransform`, or an object naming it by `method` with its own settings. */
export type QuantizeSetting = string | { readonly method: string; readonly [key: string]: unknown };

/** The transform a `quantize` setting names, and its per-model settings (absent for the plain name). */
export function parseQuantizeSetting(setting: QuantizeSetting): {
  method: string;
  options?: Readonly<Record<string, unknown>>;
} {
  if (typeof setting === 'string') return { method: setting };
  const { method, ...options } = setting;
  return { method, options };
}

/**
 * How a model is served, as a `models[]` config entry says it, without its name and path. Settings that only one
 * engine reads are ignored by the other (`graphStyle`, `speculative` for LLMs; batching for tensor models).
 */
export interface ModelServingOptions {
  /** Version label; a tensor model's swap defaults to one above its highest version. */
  version?: string;
  backend?: string;
  /** LLMs Nucleus builds a graph for: `contrib` or `generic` attention (see the config's `models[].graphStyle`). */
  graphStyle?: 'generic' | 'contrib';
  /** A `modelTransform` applied at load (`int8`), or one with per-model settings (`{ method: static, … }`). */
  quantize?: QuantizeSetting;
  /** LLMs built from block-quantized weights: `float32` or `int8` activations (see `models[].quantizedMatmul`). */
  quantizedMatmul?: 'float32' | 'int8';
  /** LLMs: the speculative decoding method a plugin contributes (`ngram`). */
  speculative?: string;
  /** LLMs whose source holds no tokenizer (a llama2.c checkpoint): the tokenizer file (see `models[].tokenizer`). */
  tokenizer?: string;
  /** LLMs: a Jinja chat template replacing the model's own. */
  chatTemplate?: string;
  /** Hex SHA-256 a single-file source must have, or a folder's pins by file (see `models[].sha256`). */
  sha256?: Sha256Pin;
  /** Replicas (worker threads or processes), each with its own session. */
  workers?: number;
  isolation?: 'thread' | 'process';
  /** Warm-up runs after load (true = 1): dummy inputs for a tensor model, a short greedy generation for an LLM. */
  warmup?: boolean | number;
  maxBatchSize?: number;
  maxQueueDelayMs?: number;
  preferredBatchSizes?: number[];
  batching?: boolean;
}

/** A model to load: its name and where its files are. */
export interface ModelLoadRequest extends ModelServingOptions {
  name: string;
  /**
   * A `.onnx` file or model folder (tensor model); a `.gguf` file, a llama2.c `.bin` checkpoint or an ONNX export
   * folder (LLM); or a URI a `modelSource` plugin fetches (`hf://ORG/REPO/file.gguf`). Omitted: the model is loaded again from where the server found it (config, model repository).
   */
  source?: string;
}

/** What a model is swapped to. */
export interface ModelSwapRequest extends ModelServingOptions {
  source: string;
  /** How long generations and batches already running on the old version may take to finish before it closes. */
  drainTimeoutMs?: number;
  /**
   * Only this version is replaced (it keeps its label unless `version` names another) and the name's other versions
   * serve on; without it the new version replaces every version of the name. LLMs only.
   */
  replaces?: string;
}

/** How a model is unloaded. */
export interface ModelUnloadOptions {
  /** How long work already running may take to finish before it ends with a 503 `model_unloading` error. */
  drainTimeoutMs?: number;
  /** Only this version is unloaded; the name's other versions serve on. */
  version?: string;
}

/** The state of a model or one of its versions in the registry. */
export type RegisteredModelState = 'idle' | 'loading' | 'ready' | 'unloading' | 'unavailable' | 'failed';

/** One version of a {@link RegisteredModel}. */
export interface RegisteredModelVersion {
  version: string;
  state: RegisteredModelState;
  /** Why it failed or is unavailable. */
  reason?: string;
  /** The file or folder it was loaded from; absent for a built-in model not opened yet. */
  source?: string;
  /** The backend its sessions run on, once open. */
  backend?: string;
  /** Its workers (replicas) now. */
  replicas: number;
}

/** A model as the registry lists it, whichever engine serves it. */
export interface RegisteredModel {
  name: string;
  /** `tensor` models run through the tensor engine; `llm` and `embedding` models through the generation engine. */
  kind: 'tensor' | 'llm' | 'embedding';
  /** Where its files came from. */
  origin: 'builtin' | 'config' | 'repository' | 'runtime';
  /** The state of the version that answers requests (or of the newest one when none does). */
  state: RegisteredModelState;
  /** The version requests go to when they name none. */
  defaultVersion?: string;
  backend?: string;
  /** Workers of the version that answers requests. */
  replicas: number;
  versions: RegisteredModelVersion[];
}

/**
 * Loads, swaps and unloads models at run time, tensor models and LLMs alike (registered under `Services.models`).
 * A swap opens the new version beside the old one, warms it up, switches new requests to it at once and lets the
 * old one finish what it runs before it closes; a load or warm-up that fails leaves the old version serving. Errors
 * are NucleusErrors: 400 for a source that cannot be loaded (saying why), 404 for an unknown model, 409 for a name
 * already loaded.
 */
export interface ModelRegistry {
  /** Every model, tensor and LLM, with its versions. */
  list(): RegisteredModel[];
  /** One model; 404 when unknown. */
  get(name: string): RegisteredModel;
  /**
   * The version a request that names none goes to, as `get(name).defaultVersion` says, without describing the model;
   * undefined when the name is unknown or nothing serves it. Hooks read it per request.
   */
  defaultVersion?(name: string): string | undefined;
  /** Loads a model from `source` (409 when the name is taken), or again from where the server found it. */
  load(request: ModelLoadRequest): Promise<RegisteredModel>;
  /** Replaces a loaded model with the one at `source`, without dropping a request. */
  swap(name: string, request: ModelSwapRequest): Promise<RegisteredModel>;
  /** New requests get 404 at once; running ones finish (up to the drain timeout); then its workers close. */
  unload(name: string, options?: ModelUnloadOptions): Promise<void>;
}
