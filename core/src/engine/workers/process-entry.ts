// The entry of a worker child process. It starts the liveness heartbeat first, so a process that freezes while
// still loading is noticed too, then waits for its spec (the first IPC message) and loads the worker body named in
// it — the same module a worker thread runs.
import { Worker } from 'node:worker_threads';
import { lowerThreads, runtimeHelperThreads } from './runtime-threads.js';
import { lowerPriority, setProcessWorkerData } from './worker-port.js';

/** The first message a worker process receives. */
interface ProcessInit {
  type: 'process-init';
  /** The worker body's module URL (session-thread.js, generation-thread.js). */
  entry: string;
  /** The body's spec, what a thread gets as `workerData.spec`. */
  data: unknown;
  /** The niceness the worker body runs at (see `WorkerHandleOptions.niceness`). */
  niceness: number;
  /** How often the heartbeat thread reports, ms. */
  heartbeatIntervalMs: number;
  /** The file descriptor of the heartbeat pipe. */
  heartbeatFd: number;
}

// A parent that went away (crashed, killed) leaves nobody to serve: end with it rather than linger.
process.on('disconnect', () => process.exit(0));

process.once('message', (message: ProcessInit) => {
  if (message?.type !== 'process-init') {
    process.stderr.write('worker process: the first message was not process-init\n');
    process.exit(2);
  }
  // Nothing but the runtime's helper threads exist yet; they collect this process's garbage at the worker's priority.
  lowerThreads(runtimeHelperThreads(), message.niceness);
  // The heartbeat runs in a thread of its own: ORT's session.run blocks this thread for the whole run, and a long
  // run is not a frozen process. A stopped or deadlocked process stops beating; the main process kills it.
  const heartbeat = new Worker(new URL('./heartbeat-thread.js', import.meta.url), {
    workerData: { fd: message.heartbeatFd, intervalMs: message.heartbeatIntervalMs },
    name: 'heartbeat',
  });
  heartbeat.unref();
  // After the heartbeat thread started, so that it keeps beating at the server's priority under full load.
  lowerPriority(message.niceness);
  setProcessWorkerData(message.data);
  import(message.entry).catch((err: unknown) => {
    process.stderr.write(
      `worker process: could not load ${message.entry}: ${err instanceof Error ? err.stack : String(err)}\n`,
    );
    process.exit(1);
  });
});
