import { parentPort, workerData } from 'node:worker_threads';
import { lowerThreads } from '../engine/workers/runtime-threads.js';
import { jsonNestsDeeperThan } from './json-depth.js';

/** A job for the JSON parser thread: the raw body (transferred) and whether v2 tensor data may become typed arrays. */
export interface ParseJob {
  id: number;
  bytes: Uint8Array;
  tensors: boolean;
  /** Deepest nesting accepted; a deeper body is refused before it is parsed (its hand-back would overflow the stack). */
  maxDepth: number;
}

/** The answer to a {@link ParseJob}. */
export type ParseResult =
  | { id: number; ok: true; value: unknown }
  | { id: number; ok: false; message: string; tooDeep?: true };

type Typed = Float32Array | Float64Array | Int8Array | Int16Array | Int32Array | Uint8Array | Uint16Array | Uint32Array;

const TYPED: Record<string, new (n: number) => Typed> = {
  FP32: Float32Array,
  FP64: Float64Array,
  INT8: Int8Array,
  INT16: Int16Array,
  INT32: Int32Array,
  UINT8: Uint8Array,
  UINT16: Uint16Array,
  UINT32: Uint32Array,
};

/** The numbers of a flat or nested list in row-major order, or undefined when anything else is in it. */
function numbers(value: unknown[]): unknown[] | undefined {
  const flat = value.some(Array.isArray) ? value.flat(Infinity) : value;
  for (let i = 0; i < flat.length; i++) if (typeof flat[i] !== 'number') return undefined;
  return flat;
}

/**
 * A v2 input's list of numbers as a typed array: the one `datatype` names when every value fits it exactly (so the
 * route's checks would pass unchanged), else a Float64Array that the route converts and checks as it would the list.
 */
export function typedTensorData(data: unknown[], datatype: unknown): Typed | undefined {
  const flat = numbers(data);
  if (!flat) return undefined;
  const Ctor = typeof datatype === 'string' ? TYPED[datatype] : undefined;
  if (Ctor) {
    const out = new Ctor(flat.length);
    const exact = !(Ctor === Float32Array || Ctor === Float64Array);
    let fits = true;
    for (let i = 0; i < flat.length; i++) {
      out[i] = flat[i] as number;
      if (exact && out[i] !== flat[i]) fits = false;
    }
    if (fits) return out;
  }
  return Float64Array.from(flat as number[]);
}

/** Replaces `inputs[i].data` lists of numbers with typed arrays; returns their buffers for transfer. */
export function typeTensorInputs(body: unknown): ArrayBuffer[] {
  const inputs = (body as { inputs?: unknown } | null)?.inputs;
  if (!Array.isArray(inputs)) return [];
  const transfer: ArrayBuffer[] = [];
  for (const input of inputs) {
    if (!input || typeof input !== 'object') continue;
    const entry = input as { data?: unknown; datatype?: unknown };
    if (!Array.isArray(entry.data) || entry.data.length === 0) continue;
    const typed = typedTensorData(entry.data, entry.datatype);
    if (!typed) continue;
    entry.data = typed;
    transfer.push(typed.buffer as ArrayBuffer);
  }
  return transfer;
}

const decoder = new TextDecoder();

/** Parses like the body parser does (strict: an object or an array at the top). */
export function parseJob(job: ParseJob): { result: ParseResult; transfer: ArrayBuffer[] } {
  if (jsonNestsDeeperThan(job.bytes, job.maxDepth))
    return { result: { id: job.id, ok: false, message: 'nested too deep', tooDeep: true }, transfer: [] };
  try {
    const text = decoder.decode(job.bytes);
    const trimmed = text.trimStart();
    if (trimmed[0] !== '{' && trimmed[0] !== '[') throw new SyntaxError('invalid JSON, only supports object and array');
    const value: unknown = JSON.parse(text);
    const transfer = job.tensors ? typeTensorInputs(value) : [];
    return { result: { id: job.id, ok: true, value }, transfer };
  } catch (err) {
    return { result: { id: job.id, ok: false, message: (err as Error).message }, transfer: [] };
  }
}

if (parentPort) {
  const port = parentPort;
  // 0 is the calling thread: on Linux niceness is per thread, so only this parser yields to the event loop.
  lowerThreads([0], (workerData as { niceness?: number } | null)?.niceness ?? 0);
  port.on('message', (job: ParseJob) => {
    const { result, transfer } = parseJob(job);
    port.postMessage(result, transfer);
  });
}
