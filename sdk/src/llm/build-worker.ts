import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { NucleusError } from '../errors.js';
import type { Progress, ProgressUnit } from '../progress.js';

// Parent ⇄ worker messages: progress calls relayed by operation id, then one result or error.
type BuildMessage =
  | { kind: 'progress'; id: number; call: 'start'; total: number; label: string; unit?: ProgressUnit }
  | { kind: 'progress'; id: number; call: 'advance'; units: number }
  | { kind: 'progress'; id: number; call: 'done' }
  | { kind: 'result'; value: unknown }
  | { kind: 'error'; name: string; message: string; status?: number; code?: string };

/**
 * Runs a long, synchronous build (reading gigabytes of weights, building a graph) in a worker thread, so the server's
 * event loop keeps answering while it runs and the build's memory goes back when the thread ends. `module` is a file
 * that calls {@link serveBuildWorker}; `data` is posted to it (plain data only). Progress the worker reports is relayed
 * to `progress`; an error it throws is rethrown here with its message, and its status and code when it had them.
 */
export function runBuildWorker<T>(module: URL, data: unknown, progress: () => Progress): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const worker = new Worker(module, { workerData: data });
    const operations = new Map<number, Progress>();
    let settled = false;
    const settle = (act: () => void): void => {
      if (settled) return;
      settled = true;
      for (const op of operations.values()) op.done();
      act();
    };
    worker.on('message', (m: BuildMessage) => {
      if (m.kind === 'progress') {
        // An operation exists here from its start to its done; calls outside that span change nothing.
        if (m.call === 'start') {
          const op = progress();
          operations.set(m.id, op);
          op.start(m.total, m.label, m.unit);
        } else if (m.call === 'advance') {
          operations.get(m.id)?.advance(m.units);
        } else {
          operations.get(m.id)?.done();
          operations.delete(m.id);
        }
      } else if (m.kind === 'result') {
        settle(() => resolve(m.value as T));
      } else {
        const error =
          m.status !== undefined && m.code !== undefined
            ? new NucleusError(m.status, m.code, m.message)
            : Object.assign(new Error(m.message), { name: m.name });
        settle(() => reject(error));
      }
    });
    worker.once('error', (err) => settle(() => reject(err)));
    worker.once('exit', (code) =>
      settle(() => reject(new Error(`the build worker ${module.pathname} exited with code ${code} before answering`))),
    );
  });
}

/**
 * The worker side of {@link runBuildWorker}: runs `build` on the posted data with a progress factory that reports to
 * the parent, and posts its result (plain data) or its error back.
 */
export function serveBuildWorker<D, T>(build: (data: D, progress: () => Progress) => T | Promise<T>): void {
  if (isMainThread || !parentPort) throw new Error('serveBuildWorker runs only inside a build worker thread');
  const port = parentPort;
  let next = 0;
  const progress = (): Progress => {
    const id = next++;
    return {
      start: (total, label, unit) =>
        port.postMessage({ kind: 'progress', id, call: 'start', total, label, ...(unit && { unit }) }),
      advance: (units) => port.postMessage({ kind: 'progress', id, call: 'advance', units }),
      done: () => port.postMessage({ kind: 'progress', id, call: 'done' }),
    };
  };
  Promise.resolve()
    .then(() => build(workerData as D, progress))
    .then(
      (value) => port.postMessage({ kind: 'result', value }),
      (err: unknown) => {
        const e = err instanceof Error ? err : new Error(String(err));
        port.postMessage({
          kind: 'error',
          name: e.name,
          message: e.message,
          ...(e instanceof NucleusError && { status: e.status, code: e.code }),
        });
      },
    );
}
