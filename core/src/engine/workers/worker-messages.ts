import type { SessionOptions, Tensor, TensorData, TensorDataType } from '@nucleus/sdk';

/** What a session worker needs to open its session; plain data, since it crosses into the thread. */
export interface SessionWorkerSpec {
  /** `model@version`, for messages and thread names. */
  label: string;
  modelPath: string;
  /** The backend chosen for the model and the session options it gave. */
  backend: { name: string; requested: string; options: SessionOptions; fallbackReason?: string };
  /** Where to retry when ORT rejects the backend's provider (the CPU backend's options). */
  fallback?: { name: string; options: SessionOptions };
  /** One Int32 the main thread sets to 1 to make the thread exit before its next run (see `SessionWorkerClient.kill`). */
  control?: SharedArrayBuffer;
}

/**
 * What a shared session worker starts with: no session of its own; it opens one per `open` message, for the small
 * models that share the thread (see `SharedSessionThread`), and runs them in turn.
 */
export interface SharedSessionThreadSpec {
  shared: true;
  /** As {@link SessionWorkerSpec.control}: the kill flag of the whole thread. */
  control: SharedArrayBuffer;
}

/** One input or output as ORT's session metadata reports it. */
export interface WireValueMetadata {
  name: string;
  isTensor: boolean;
  type?: string;
  shape?: (number | string)[];
}

/** A tensor on the wire: its data travels as a transferred ArrayBuffer. */
export interface WireTensor {
  name: string;
  dtype: TensorDataType;
  shape: number[];
  data: TensorData;
}

/**
 * Messages the main thread sends a worker; the thread handles them one at a time, in order. In a shared thread
 * `session` says which of its sessions a message is for (absent in a thread of one session's own).
 */
export type ToWorker =
  | { type: 'run'; id: number; inputs: WireTensor[]; session?: number }
  /** Release the session and end the thread (a shared thread: answer `closed` instead), after the runs sent before. */
  | { type: 'close'; session?: number }
  /** A shared thread: open a session for `spec`, answered by `ready` or `init-error` with the same `session`. */
  | { type: 'open'; session: number; spec: SessionWorkerSpec }
  /** End the thread now, as a crash would (after the run in progress, if any). */
  | { type: 'exit'; code: number }
  /** Test support only: keep the thread busy for `ms` without answering, as a run stuck in native code would. */
  | { type: 'test-block'; ms: number };

/** Messages a worker sends the main thread; from a shared thread, each names the `session` it is about. */
export type FromWorker = (
  | {
      type: 'ready';
      backend: string;
      fallbackReason?: string;
      /** True when ORT rejected the chosen backend and the session runs on the fallback instead. */
      rejected: boolean;
      inputs: WireValueMetadata[];
      outputs: WireValueMetadata[];
    }
  | { type: 'init-error'; message: string; code: string }
  | { type: 'result'; id: number; outputs: WireTensor[]; runMs: number }
  | { type: 'error'; id: number; message: string; code: string }
  /** A shared thread released the session a `close` named. */
  | { type: 'closed' }
) & { session?: number };

/** A copy of `data` that owns its whole buffer, so the buffer can be transferred without detaching anything else. */
export function ownedData(data: TensorData): TensorData {
  if (data.byteOffset === 0 && data.byteLength === data.buffer.byteLength && data.buffer instanceof ArrayBuffer)
    return data;
  return (data as Float32Array).slice() as TensorData;
}

/** Tensors as wire tensors plus the buffers to transfer; the caller must not touch `tensors`' data afterwards. */
export function packTensors(tensors: Record<string, Tensor>): { wire: WireTensor[]; transfer: ArrayBuffer[] } {
  const wire: WireTensor[] = [];
  const transfer: ArrayBuffer[] = [];
  for (const [name, t] of Object.entries(tensors)) {
    const data = ownedData(t.data);
    wire.push({ name, dtype: t.dtype, shape: [...t.shape], data });
    if (!transfer.includes(data.buffer as ArrayBuffer)) transfer.push(data.buffer as ArrayBuffer);
  }
  return { wire, transfer };
}

/** Wire tensors back into a record by name. */
export function unpackTensors(wire: readonly WireTensor[]): Record<string, Tensor> {
  const out: Record<string, Tensor> = {};
  for (const t of wire) out[t.name] = { dtype: t.dtype, shape: t.shape, data: t.data };
  return out;
}
