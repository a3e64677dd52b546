import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { isMainThread, parentPort } from 'node:worker_threads';
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
 * Runs a long, synchronous build (reading gigabytes of weights, building a graph) in a child process, so the server's
 * event loop keeps answering while it runs and every byte the build allocated goes back to the system when it ends (a
 * worker thread's heap would stay in the server's resident memory). `module` is a file that calls
 * {@link serveBuildWorker}; `data` is sent to it (plain data only). Progress the build reports is relayed to
 * `progress`; an error it throws is rethrown here with its message, and its status and code when it had them.
 */
export function runBuildWorker<T>(module: URL, data: unknown, progress: () => Progress): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const worker = fork(fileURLToPath(module), [], { serialization: 'advanced', stdio: 'inherit' });
    worker.send({ kind: 'job', data });
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
        worker.disconnect();
      } else {
        const error =
          m.status !== undefined && m.code !== undefined
            ? new NucleusError(m.status, m.code, m.message)
            : Object.assign(new Error(m.message), { name: m.name });
        settle(() => reject(error));
        worker.disconnect();
      }
    });
    worker.once('error', (err) => settle(() => reject(err)));
    worker.once('exit', (code, signal) =>
      settle(() =>
        reject(new Error(`the build process ${module.pathname} exited (${signal ?? `code ${code}`}) before answering`)),
      ),
    );
  });
}

/**
 * The child side of {@link runBuildWorker}: runs `build` on the data sent with a progress factory that reports to the
 * parent, sends its result (plain data) or its error back, and lets the process end.
 */
export function serveBuildWorker<D, T>(build: (data: D, progress: () => Progress) => T | Promise<T>): void {
  const send = process.send?.bind(process);
  if (!send || !isMainThread || parentPort)
    throw new Error('serveBuildWorker runs only in a process runBuildWorker forked');
  const post = (m: BuildMessage): void => {
    send(m);
  };
  let next = 0;
  const progress = (): Progress => {
    const id = next++;
    return {
      start: (total, label, unit) => post({ kind: 'progress', id, call: 'start', total, label, ...(unit && { unit }) }),
      advance: (units) => post({ kind: 'progress', id, call: 'advance', units }),
      done: () => post({ kind: 'progress', id, call: 'done' }),
    };
  };
  process.once('message', (m: { kind: 'job'; data: D }) => {
    Promise.resolve()
      .then(() => build(m.data, progress))
      .then(
        (value) => post({ kind: 'result', value }),
        (err: unknown) => {
          const e = err instanceof Error ? err : new Error(String(err));
          post({
            kind: 'error',
            name: e.name,
            message: e.message,
            ...(e instanceof NucleusError && { status: e.status, code: e.code }),
          });
        },
      );
  });
}
