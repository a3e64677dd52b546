// The worker side of the channel to the main process, the same for both isolations: a worker thread talks over
// `parentPort` and gets its spec as `workerData`; a child process talks over its IPC channel (advanced
// serialization, so typed arrays cross as they are) and gets its spec in the first message (see process-entry.ts).
import { parentPort, receiveMessageOnPort, workerData } from 'node:worker_threads';
import { lowerThreads } from './runtime-threads.js';
import type { WorkerBoot } from './worker-handle.js';

/** The worker's end of its channel to the main process. */
export interface WorkerPort {
  /** What the main process started the worker with (its spec). */
  readonly data: unknown;
  /** Sends a message; in a thread the `transfer` buffers move without a copy, in a process they are copied. */
  post(message: unknown, transfer?: ArrayBuffer[]): void;
  /**
   * Receives the main process's messages, in order. Messages that arrived together are handed over in one go, before
   * anything the first one woke runs: a burst of requests sent at once is seen at once, as a loop that drains its
   * input queue before it plans would see it.
   */
  on<T>(handler: (message: T) => void): void;
}

let processData: { value: unknown } | undefined;

/** Called by the child process's entry with the spec from its first message, before the worker body loads. */
export function setProcessWorkerData(data: unknown): void {
  processData = { value: data };
}

/**
 * Lowers the scheduling priority of the calling thread (on Linux niceness is per thread, and threads started later,
 * such as ORT's thread pool, inherit it); a value the OS refuses leaves it as it was.
 */
export function lowerPriority(niceness: number): void {
  // Thread id 0 is the calling thread.
  lowerThreads([0], niceness);
}

/** The channel of the thread or child process this code runs in; throws on the main thread of the main process. */
export function workerPort(): WorkerPort {
  if (parentPort) {
    const port = parentPort;
    const boot = workerData as WorkerBoot;
    lowerPriority(boot.niceness);
    return {
      data: boot.spec,
      post: (message, transfer = []) => port.postMessage(message, transfer),
      on: <T>(handler: (message: T) => void) =>
        void port.on('message', (first: T) => {
          handler(first);
          // A thread's queued messages otherwise come one event-loop turn apart.
          for (let next = receiveMessageOnPort(port); next; next = receiveMessageOnPort(port))
            handler(next.message as T);
        }),
    };
  }
  const send = process.send?.bind(process);
  if (!send || !processData) throw new Error('not running as a worker: no parentPort and no IPC channel with a spec');
  return {
    data: processData.value,
    // A send after the parent went away has nowhere to go; the 'disconnect' handler ends the process.
    post: (message) => void send(message, undefined, {}, () => undefined),
    // Messages read from the channel together are emitted together already.
    on: <T>(handler: (message: T) => void) => void process.on('message', handler as (message: unknown) => void),
  };
}
