// The body of a session worker, run as a thread or as a child process (see worker-port.ts): it owns one ORT session,
// so `session.run` blocks this worker and never the server's event loop. Messages: `run` in, `result` or `error`
// out; `ready` or `init-error` once at start.
import { performance } from 'node:perf_hooks';
import * as ort from 'onnxruntime-node';
import type { Backend, SessionOptions, TensorData, TensorDataType } from '@nucleus/sdk';
import { createBackendSession } from '../backend-session.js';
import type { FromWorker, SessionWorkerSpec, ToWorker, WireTensor, WireValueMetadata } from './worker-messages.js';
import { workerPort } from './worker-port.js';

ort.env.logLevel = 'fatal';

const port = workerPort();
const spec = port.data as SessionWorkerSpec;
const control = spec.control ? new Int32Array(spec.control) : undefined;

function killed(): boolean {
  return control !== undefined && Atomics.load(control, 0) === 1;
}

function post(message: FromWorker, transfer: ArrayBuffer[] = []): void {
  port.post(message, transfer);
}

// The backends live in plugins on the main thread; here they are only their session options.
function optionsBackend(name: string, options: SessionOptions): Backend {
  return {
    name,
    rank: 0,
    probe: async () => ({ usable: true, devices: [], executionProviders: [] }),
    sessionOptions: () => options,
  };
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

async function main(): Promise<void> {
  let session: ort.InferenceSession;
  let backend: string;
  let fallbackReason: string | undefined;
  let rejected = false;
  try {
    const primary = optionsBackend(spec.backend.name, spec.backend.options);
    const created = await createBackendSession(
      spec.modelPath,
      {
        backend: primary,
        probe: { usable: true, devices: [], executionProviders: [] },
        requested: spec.backend.requested,
        ...(spec.backend.fallbackReason !== undefined && { fallbackReason: spec.backend.fallbackReason }),
      },
      spec.fallback ? { fallback: optionsBackend(spec.fallback.name, spec.fallback.options) } : {},
    );
    session = created.session;
    backend = created.backend.name;
    fallbackReason = created.fallbackReason;
    rejected = created.backend !== primary;
  } catch (err) {
    post({ type: 'init-error', message: err instanceof Error ? err.message : String(err), code: errorCode(err) });
    return;
  }
  const outputNames = session.outputNames;
  post({
    type: 'ready',
    backend,
    ...(fallbackReason !== undefined && { fallbackReason }),
    rejected,
    inputs: metadataOf(session.inputMetadata),
    outputs: metadataOf(session.outputMetadata),
  });

  // One message at a time: a run never overlaps another, and `close` waits for the runs sent before it. Ending
  // the thread while ORT is inside a run aborts the whole process, so the thread only ever ends between runs.
  let chain: Promise<void> = Promise.resolve();
  port.on((message: ToWorker) => {
    chain = chain.then(async () => {
      if (killed()) process.exit(70);
      if (message.type === 'exit') process.exit(message.code);
      if (message.type === 'close') {
        await session.release();
        process.exit(0);
      }
      if (message.type === 'test-block') {
        testBlock(message.ms);
        if (killed()) process.exit(70);
      }
      if (message.type === 'run') await run(session, outputNames, message.id, message.inputs);
    });
  });
}

async function run(
  session: ort.InferenceSession,
  outputNames: readonly string[],
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
    post({ type: 'result', id, outputs, runMs }, transfer);
  } catch (err) {
    post({ type: 'error', id, message: err instanceof Error ? err.message : String(err), code: 'inference_failed' });
  }
}

// Test support only: a synchronous busy-wait stands in for a run that hangs inside ORT, which JS cannot interrupt.
function testBlock(ms: number): void {
  const until = Date.now() + ms;
  while (Date.now() < until) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 5);
}

void main();
