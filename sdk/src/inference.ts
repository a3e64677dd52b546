import type { BackendProbe } from './backend.js';

/** Element types a tensor may hold, named as onnxruntime names them. */
export type TensorDataType =
  | 'float32'
  | 'float64'
  | 'float16'
  | 'int8'
  | 'int16'
  | 'int32'
  | 'int64'
  | 'uint8'
  | 'uint16'
  | 'uint32'
  | 'uint64'
  | 'bool';

/** The typed array behind a tensor; `float16` is stored as raw bits in a Uint16Array, `bool` as a Uint8Array of 0/1. */
export type TensorData =
  | Float32Array
  | Float64Array
  | Int8Array
  | Int16Array
  | Int32Array
  | BigInt64Array
  | Uint8Array
  | Uint16Array
  | Uint32Array
  | BigUint64Array;

/** A dense row-major tensor. */
export interface Tensor {
  dtype: TensorDataType;
  shape: number[];
  data: TensorData;
}

/** A model input or output as the server describes it. */
export interface TensorMetadata {
  name: string;
  dtype: TensorDataType;
  /** Dimensions; `-1` where the model accepts any size (a symbolic dimension). */
  shape: number[];
  /** The symbolic name of each dimension (`batch`, `sequence`), `null` where the dimension is fixed or unnamed. */
  dimNames: (string | null)[];
  description?: string;
}

/** How requests to one model version are batched. */
export interface BatchingInfo {
  enabled: boolean;
  /** Why batching is off when it is, e.g. an input without a batch dimension. */
  reason?: string;
  maxBatchSize: number;
  maxQueueDelayMs: number;
  preferredBatchSizes: number[];
  /** Whether requests of different lengths are padded into one batch. */
  padding: boolean;
}

/** A change to how a loaded model batches, made at run time (an auto-tuner); an absent field keeps its value. */
export interface BatchingUpdate {
  /** Largest batch the batcher forms (still halved under memory pressure). */
  maxBatchSize?: number;
  /** How long a request may wait for others to fill its batch. */
  maxQueueDelayMs?: number;
}

/** One worker (replica) of a model version: its state and, for a child process, its pid and measured memory. */
export interface WorkerReplicaStatus {
  /** The worker's index within the model's pool (as in `worker.health` events). */
  id: number;
  isolation: 'thread' | 'process';
  /** The thread is shared with other small models (`workers.shareBelowBytes`), which run in turn with this one. */
  shared?: boolean;
  /** `restarting` after a death, during the backoff; `failed` once restarts were given up. */
  state: 'starting' | 'serving' | 'restarting' | 'failed';
  pid?: number;
  /** The process's resident set size as its last heartbeat measured it (process isolation only). */
  rssBytes?: number;
  restarts: number;
  /** Runs answered by this worker. */
  runs: number;
  /** Runs sent to it and not yet answered. */
  pending: number;
  /** Why it last ended, while it is not serving. */
  lastExit?: string;
  /** A generation worker: sequences running and waiting in its loop, as it last reported. */
  running?: number;
  waiting?: number;
  /** A generation worker being retired: it takes no new requests and ends once those it holds finish. */
  retiring?: boolean;
}

/** Where a model version runs and what it is doing now. */
export interface ModelVersionStatus {
  /** The backend the session really runs on. */
  backend: string;
  /** The backend config asked for (`auto`, `cuda` …). */
  requestedBackend: string;
  /** Why `backend` is not what was asked for. */
  fallbackReason?: string;
  /** Requests waiting to be batched. */
  queued: number;
  /** Requests sent to a worker and not yet answered. */
  inFlight: number;
  /** Worker threads holding a session for this version. */
  workers: number;
  /** Times a worker died and was started again. */
  workerRestarts: number;
  /** Where the workers run: threads of the server process, or child processes of their own. */
  isolation?: 'thread' | 'process';
  /** Each worker (replica) taking runs. */
  replicas?: WorkerReplicaStatus[];
  requests: number;
  failures: number;
  batches: number;
  /** Mean requests per batch so far. */
  meanBatchSize: number;
  /** The circuit breaker: `open` while the version fails fast with 503 `circuit_open`. */
  breaker?: {
    state: 'closed' | 'open' | 'half-open';
    consecutiveFailures: number;
    retryAfterMs?: number;
    reason?: string;
  };
}

/** The lifecycle of a model version. */
export type ModelVersionState = 'loading' | 'ready' | 'unloading' | 'unavailable' | 'failed';

/** One version of a model as the server knows it: what model.json says, what the session reports, and its state. */
export interface ModelVersionInfo {
  name: string;
  version: string;
  state: ModelVersionState;
  /** Why the version is failed or unavailable. */
  reason?: string;
  /** Where the files came from: `config`, `repository`, `builtin`, or a load at run time (`runtime`). */
  origin: 'config' | 'repository' | 'builtin' | 'runtime';
  path: string;
  inputs: TensorMetadata[];
  outputs: TensorMetadata[];
  /** The rest of model.json: description, framework, metrics, training date, sha256, labels, preprocessing … */
  metadata: Record<string, unknown>;
  batching?: BatchingInfo;
  status?: ModelVersionStatus;
}

/** A model and all its known versions. */
export interface ModelInfo {
  name: string;
  /** The version served when a request names none: the highest ready one. */
  defaultVersion?: string;
  versions: ModelVersionInfo[];
}

/** One inference call. */
export interface InferRequest {
  model: string;
  /** Omitted: the highest ready version. */
  version?: string;
  inputs: Record<string, Tensor>;
  /** Only these outputs are returned; all by default. */
  outputs?: string[];
  /** Aborting takes the request out of its batch if it has not been dispatched yet. */
  signal?: AbortSignal;
  /** The server's request id (`x-request-id`), carried into telemetry events. */
  requestId?: string;
  /**
   * `low` (offline batch jobs) waits behind every queued `normal` or `high` request of the model, so interactive
   * traffic is not queued behind a job. Default `normal`.
   */
  priority?: 'high' | 'normal' | 'low';
}

/** The answer to an {@link InferRequest}. */
export interface InferResult {
  model: string;
  version: string;
  outputs: Record<string, Tensor>;
}

/** A line of the repository index: every model version the sources hold, loaded or not. */
export interface RepositoryEntry {
  name: string;
  version: string;
  /** `ready` when loaded, `unavailable` when present on disk but not loaded, or a transient state. */
  state: ModelVersionState;
  reason?: string;
}

/** An installed backend and what its probe found. */
export interface BackendReport {
  name: string;
  rank: number;
  /** The plugin that contributed it; absent for the kernel's built-in CPU defaults. */
  pluginId?: string;
  probe: BackendProbe;
}

/**
 * The tensor-model engine as plugins see it (registered under `Services.inference`): look models up, run them,
 * and load or unload them. Errors are NucleusErrors: 404 for an unknown model or version, 400 for inputs that
 * do not match the model, 503 when a model is not ready.
 */
export interface InferenceService {
  /** Every model with at least one known version, by name. */
  list(): ModelInfo[];
  /** One model and its versions; 404 when unknown. */
  model(name: string): ModelInfo;
  /** One version (the default one when `version` is omitted); 404 when unknown. */
  get(name: string, version?: string): ModelVersionInfo;
  /**
   * As {@link get}, without the live `batching` and `status`, which are built afresh on each call: what a route or a
   * hook that reads a version's signature and metadata on every request asks for.
   */
  describe?(name: string, version?: string): ModelVersionInfo;
  /** Checks the inputs against the model, batches the request with others and runs it off the event loop. */
  infer(request: InferRequest): Promise<InferResult>;
  /** Loads (or reloads) every version of `name` the sources hold; 404 when no source has it. */
  load(name: string): Promise<ModelInfo>;
  /** Unloads one version, or all versions of `name`; 404 when nothing is loaded under that name. */
  unload(name: string, version?: string): Promise<void>;
  /** Every model version the sources hold, with its state. */
  index(): Promise<RepositoryEntry[]>;
  /** Every installed backend with its probe. */
  backends(): Promise<BackendReport[]>;
  /**
   * Changes how every ready version of `name` batches, until it is unloaded (a version loaded later starts from its
   * configured settings); returns each version's batching now. 404 for an unknown model, 400 for a model that does
   * not batch or a value out of range.
   */
  setBatching(name: string, update: BatchingUpdate): BatchingInfo[];
}

/** Typed-array constructors by dtype. */
export const TENSOR_ARRAYS = {
  float32: Float32Array,
  float64: Float64Array,
  float16: Uint16Array,
  int8: Int8Array,
  int16: Int16Array,
  int32: Int32Array,
  int64: BigInt64Array,
  uint8: Uint8Array,
  uint16: Uint16Array,
  uint32: Uint32Array,
  uint64: BigUint64Array,
  bool: Uint8Array,
} as const;

/** True when `value` names a dtype the engine handles. */
export function isTensorDataType(value: unknown): value is TensorDataType {
  return typeof value === 'string' && Object.hasOwn(TENSOR_ARRAYS, value);
}

/** Number of elements a tensor of this shape holds. */
export function elementCount(shape: readonly number[]): number {
  return shape.reduce((n, d) => n * d, 1);
}

/** True for dtypes stored as BigInt. */
export function isBigIntDataType(dtype: TensorDataType): dtype is 'int64' | 'uint64' {
  return dtype === 'int64' || dtype === 'uint64';
}

/** A zero-filled typed array for `dtype` with `length` elements. */
export function allocateTensorData(dtype: TensorDataType, length: number): TensorData {
  return new TENSOR_ARRAYS[dtype](length);
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** IEEE half-precision bits of a number (round to nearest even), for `float16` tensors. */
export function toFloat16Bits(value: number): number {
  f32[0] = value;
  const x = u32[0]!;
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    const half = mant >>> shift;
    const rest = mant & ((1 << shift) - 1);
    const mid = 1 << (shift - 1);
    return sign | (half + (rest > mid || (rest === mid && half & 1) ? 1 : 0));
  }
  const rest = mant & 0x1fff;
  let bits = (e << 10) | (mant >>> 13);
  if (rest > 0x1000 || (rest === 0x1000 && bits & 1)) bits++;
  return sign | bits;
}

/** The number a half-precision bit pattern stands for. */
export function fromFloat16Bits(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exp = (bits >>> 10) & 0x1f;
  const mant = bits & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant ? NaN : sign * Infinity;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}
