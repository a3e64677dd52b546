// The body of a session worker, run as a thread or as a child process (see worker-port.ts): it owns one ORT session,
// so `session.run` blocks this worker and never the server's event loop. Messages: `run` in, `result` or `error`
// out; `ready` or `init-error` once at start. A shared thread (see shared-session-thread.ts) starts with no session
// and opens one per `open` message; its messages name the session, and its sessions run in turn.
import { performance } from 'node:perf_hooks';
import * as ort from 'onnxruntime-node';
import type { TensorData, TensorDataType } from '@nucleus/sdk';
import { createWorkerSession } from '../backend-session.js';
import type {
  FromWorker,
  SessionWorkerSpec,
  SharedSessionThreadSpec,
  ToWorker,
  WireTensor,
  WireValueMetadata,
} from './worker-messages.js';
import { workerPort } from './worker-port.js';

ort.env.logLevel = 'fatal';

const port = workerPort();
const boot = port.data as SessionWorkerSpec | SharedSessionThreadSpec;
const shared = 'shared' in boot;
const control = boot.control ? new Int32Array(boot.control) : undefined;

function killed(): boolean {
  return control !== undefined && Atomics.load(control, 0) === 1;
}

function post(message: FromWorker, transfer: ArrayBuffer[] = []): void {
  port.post(message, transfer);
}

function metadataOf(values: readonly ort.InferenceSession.ValueMetadata[]): WireValueMetadata[] {
  return values.map((v) =>
    v.isTensor
      ? { name: v.name, isTensor: true, type: v.type, shape: [...v.shape] }
      : { name: v.name, isTensor: false },
  );
}

function errorCode(err: unknown): string {
  const code = (err as { code?: unknown }).code;
  return typeof code === 'string' ? code : 'session_create_failed';
}

interface OpenSession {
  session: ort.InferenceSession;
  outputNames: readonly string[];
}

/** The sessions this thread holds, by the id the main thread gave them (0 in a thread of one session's own). */
const sessions = new Map<number, OpenSession>();

// In a shared thread every message names its session; in a thread of its own none does.
const tagged = (id: number): { session?: number } => (shared ? { session: id } : {});

async function open(spec: SessionWorkerSpec, id: number): Promise<boolean> {
  let session: ort.InferenceSession;
  let backend: string;
  let fallbackReason: string | undefined;
  let rejected = false;
  try {
    const created = await createWorkerSession(spec.modelPath, spec);
    session = created.session;
    backend = created.backend.name;
    fallbackReason = created.fallbackReason;
    rejected = created.rejected;
  } catch (err) {
    post({
      type: 'init-error',
      message: err instanceof Error ? err.message : String(err),
      code: errorCode(err),
      ...tagged(id),
    });
    return false;
  }
  sessions.set(id, { session, outputNames: session.outputNames });
  post({
    type: 'ready',
    backend,
    ...(fallbackReason !== undefined && { fallbackReason }),
    rejected,
    inputs: metadataOf(session.inputMetadata),
    outputs: metadataOf(session.outputMetadata),
    ...tagged(id),
  });
  return true;
}

async function main(): Promise<void> {
  if (!shared && !(await open(boot, 0))) return;

  // One message at a time: a run never overlaps another (in a shared thread, not even another session's), and
  // `close` waits for the runs sent before it. Ending the thread while ORT is inside a run aborts the whole process,
  // so the thread only ever ends between runs.
  let chain: Promise<void> = Promise.resolve();
  port.on((message: ToWorker) => {
    chain = chain.then(async () => {
      if (killed()) process.exit(70);
      switch (message.type) {
        case 'exit':
          process.exit(message.code);
          break;
        case 'open':
          await open(message.spec, message.session);
          break;
        case 'close': {
          const id = message.session ?? 0;
          await sessions.get(id)?.session.release();
          sessions.delete(id);
          if (!shared) process.exit(0);
          post({ type: 'closed', session: id });
          break;
        }
        case 'test-block':
          testBlock(message.ms);
          if (killed()) process.exit(70);
          break;
        case 'run': {
          const id = message.session ?? 0;
          const open = sessions.get(id);
          if (open) await run(open, id, message.id, message.inputs);
          else
            post({
              type: 'error',
              id: message.id,
              message: 'its session is not open in this worker',
              code: 'worker_unavailable',
              ...tagged(id),
            });
          break;
        }
      }
    });
  });
}

async function run(
  { session, outputNames }: OpenSession,
  sessionId: number,
  id: number,
  inputs: WireTensor[],
): Promise<void> {
  try {
    const feeds: Record<string, ort.Tensor> = {};
    for (const t of inputs) feeds[t.name] = new ort.Tensor(t.dtype, t.data as never, t.shape);
    const started = performance.now();
    const result = await session.run(feeds);
    // Killed while this run was in progress: die without answering, as a crash would.
    if (killed()) process.exit(70);
    const runMs = performance.now() - started;
    const outputs: WireTensor[] = [];
    const transfer: ArrayBuffer[] = [];
    for (const name of outputNames) {
      const value = result[name] as ort.Tensor | undefined;
      if (!value) continue;
      // ORT's output buffers belong to ORT; a copy can be transferred without a second copy on the other side.
      const data = (value.data as TensorData).slice() as TensorData;
      outputs.push({ name, dtype: value.type as TensorDataType, shape: [...value.dims], data });
      transfer.push(data.buffer as ArrayBuffer);
    }
    post({ type: 'result', id, outputs, runMs, ...tagged(sessionId) }, transfer);
  } catch (err) {
    post({
      type: 'error',
      id,
      message: err instanceof Error ? err.message : String(err),
      code: 'inference_failed',
      ...tagged(sessionId),
    });
  }
}

// Test support only: a synchronous busy-wait stands in for a run that hangs inside ORT, which JS cannot interrupt.
function testBlock(ms: number): void {
  const until = Date.now() + ms;
  while (Date.now() < until) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 5);
}

void main();
