import { fork, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { Readable } from 'node:stream';

/** Where a worker runs: a thread of this process, or a child process of its own (which survives a native crash). */
export type WorkerIsolation = 'thread' | 'process';

/** Options of {@link WorkerHandle.spawn}. */
export interface WorkerHandleOptions {
  isolation: WorkerIsolation;
  /** A name for the thread (`session bert@1`). */
  name: string;
  /**
   * Process isolation: a process whose heartbeat stops for this long (ms) is taken as frozen and killed with
   * SIGKILL, which ends it like a crash. 0 turns the check off. Default 3000.
   */
  heartbeatTimeoutMs?: number;
  /**
   * The OS scheduling niceness the worker runs its session at (0–19; its ORT compute threads inherit it), so that
   * under full load the server's event loop wins the CPU over inference. Default 0: as the server.
   */
  niceness?: number;
}

/** The niceness inference workers run at unless `workers.niceness` says otherwise (see {@link WorkerHandleOptions.niceness}). */
export const DEFAULT_WORKER_NICENESS = 10;

/** What a worker thread gets as `workerData`: its spec, and how it sets itself up first (see `workerPort`). */
export interface WorkerBoot {
  spec: unknown;
  niceness: number;
}

const PROCESS_ENTRY = fileURLToPath(new URL('./process-entry.js', import.meta.url));
// The child's file descriptor of the heartbeat pipe: stdio 0-2, then the IPC channel at 3.
const HEARTBEAT_FD = 4;
// A process that has not beaten once yet is still loading its runtime; it gets this long before it counts as frozen.
const FIRST_BEAT_GRACE_MS = 30_000;

/**
 * The main process's end of one worker, the same for a worker thread and a child process. Events: `message`
 * (a message from the worker), `exit` (code, reason: why it ended, in words). Messages to a thread move the
 * `transfer` buffers; messages to a process are copied by IPC's advanced serialization (typed arrays as they are).
 * A process also reports its resident memory and a heartbeat: one that stops beating is killed.
 */
export class WorkerHandle extends EventEmitter {
  #thread: Worker | undefined;
  #child: ChildProcess | undefined;
  #rssBytes: number | undefined;
  #lastBeat = 0;
  #beaten = false;
  #killReason: string | undefined;
  #stderrTail = '';
  #monitor: NodeJS.Timeout | undefined;
  #exited = false;
  readonly #exit: Promise<void>;
  #markExited: () => void = () => undefined;

  private constructor(readonly isolation: WorkerIsolation) {
    super();
    this.#exit = new Promise<void>((resolve) => (this.#markExited = resolve));
  }

  /** Starts `entry` (a worker body module using `workerPort()`) as a thread or a child process, with `data` as its spec. */
  static spawn(entry: URL, data: unknown, options: WorkerHandleOptions): WorkerHandle {
    const handle = new WorkerHandle(options.isolation);
    const niceness = options.niceness ?? 0;
    if (options.isolation === 'thread') handle.#startThread(entry, data, options.name, niceness);
    else handle.#startProcess(entry, data, options.heartbeatTimeoutMs ?? 3000, niceness);
    return handle;
  }

  /** The child's process id (process isolation only). */
  get pid(): number | undefined {
    return this.#child?.pid;
  }

  /** The child's resident set size as its last heartbeat measured it (process isolation only). */
  get rssBytes(): number | undefined {
    return this.#rssBytes;
  }

  /** Whether the worker can be ended at any moment, even inside a native run (a process can; a thread cannot). */
  get killableMidRun(): boolean {
    return this.isolation === 'process';
  }

  /** Resolves once the worker has ended. */
  get exited(): Promise<void> {
    return this.#exit;
  }

  /** Sends the worker a message. */
  postMessage(message: unknown, transfer: ArrayBuffer[] = []): void {
    if (this.#thread) this.#thread.postMessage(message, transfer);
    // A process that just died cannot take it; its `exit` follows and fails what it held.
    else if (this.#child?.connected) this.#child.send(message as never, undefined, {}, () => undefined);
  }

  /**
   * Ends the worker now. A process is killed with SIGKILL (safe at any moment: nothing of it is left in this
   * process); a thread is terminated, which must not happen while ORT is inside a run on it.
   */
  async terminate(reason?: string): Promise<void> {
    if (this.#exited) return;
    if (this.#thread) {
      await this.#thread.terminate();
      return;
    }
    if (reason !== undefined) this.#killReason ??= reason;
    this.#child?.kill('SIGKILL');
    await this.#exit;
  }

  /** Lets this process exit while the worker still runs (a thread cut loose after a hang). */
  unref(): void {
    this.#thread?.unref();
    this.#child?.unref();
  }

  #startThread(entry: URL, data: unknown, name: string, niceness: number): void {
    const thread = new Worker(entry, { workerData: { spec: data, niceness } satisfies WorkerBoot, name });
    this.#thread = thread;
    let lastError: string | undefined;
    thread.on('message', (message: unknown) => this.emit('message', message));
    thread.on('error', (err) => (lastError = err.message));
    thread.on('exit', (code) => this.#ended(code, lastError ? `it threw: ${lastError}` : `exit code ${code}`));
  }

  #startProcess(entry: URL, data: unknown, heartbeatTimeoutMs: number, niceness: number): void {
    const child = fork(PROCESS_ENTRY, [], {
      serialization: 'advanced',
      stdio: ['ignore', 'inherit', 'pipe', 'ipc', 'pipe'],
      // Not the parent's flags (an inspector port would clash); the child needs none.
      execArgv: [],
      // A process group of its own: Ctrl-C at a terminal signals the server, which drains and then closes its
      // workers, rather than killing the workers under the requests still running. It still ends with the server:
      // its IPC channel closes (see process-entry.ts).
      detached: true,
    });
    this.#child = child;
    this.#lastBeat = Date.now();
    child.on('message', (message: unknown) => this.emit('message', message));
    // The child's stderr still reaches ours; its last lines say why it died when it died of an error.
    child.stderr?.on('data', (chunk: Buffer) => {
      process.stderr.write(chunk);
      this.#stderrTail = (this.#stderrTail + chunk.toString('utf8')).slice(-2000);
    });
    const beats = child.stdio[HEARTBEAT_FD] as Readable | null;
    let partial = '';
    beats?.on('data', (chunk: Buffer) => {
      const lines = (partial + chunk.toString('utf8')).split('\n');
      partial = lines.pop() ?? '';
      const last = lines.at(-1);
      if (last === undefined) return;
      const rss = Number(last);
      if (Number.isFinite(rss)) this.#rssBytes = rss;
      this.#lastBeat = Date.now();
      this.#beaten = true;
    });
    child.on('error', (err) => {
      // Failing to spawn is the only error with no exit to follow.
      if (child.pid === undefined) this.#ended(1, `the process could not start: ${err.message}`);
    });
    // 'close', not 'exit': it comes once the IPC channel is drained too, so no message of the process arrives after it.
    child.on('close', (code, signal) => this.#ended(code ?? 128, this.#processExitReason(code, signal)));
    const intervalMs = heartbeatTimeoutMs > 0 ? Math.max(20, Math.floor(heartbeatTimeoutMs / 5)) : 1000;
    const init = {
      type: 'process-init',
      entry: entry.href,
      data,
      niceness,
      heartbeatIntervalMs: intervalMs,
      heartbeatFd: HEARTBEAT_FD,
    };
    child.send(init as never, undefined, {}, () => undefined);
    if (heartbeatTimeoutMs > 0) this.#watchHeartbeat(heartbeatTimeoutMs);
  }

  #watchHeartbeat(timeoutMs: number): void {
    const checkMs = Math.max(20, Math.floor(timeoutMs / 4));
    let lastCheck = Date.now();
    this.#monitor = setInterval(() => {
      const now = Date.now();
      // This process's own event loop stalled (a long synchronous task): the beats are waiting unread, not missing.
      if (now - lastCheck > checkMs + timeoutMs / 2) this.#lastBeat = now;
      lastCheck = now;
      const silentMs = now - this.#lastBeat;
      if (silentMs <= (this.#beaten ? timeoutMs : Math.max(timeoutMs, FIRST_BEAT_GRACE_MS))) return;
      clearInterval(this.#monitor);
      void this.terminate(`no heartbeat for ${silentMs} ms (the process is frozen); killed it`);
    }, checkMs);
    this.#monitor.unref();
  }

  #processExitReason(code: number | null, signal: NodeJS.Signals | null): string {
    if (this.#killReason !== undefined) return this.#killReason;
    const lastLine = this.#stderrTail.trim().split('\n').at(-1)?.trim();
    const how = signal ? `killed by ${signal}` : `exit code ${code}`;
    return lastLine && code !== 0 && code !== 70 ? `${how}: ${lastLine}` : how;
  }

  #ended(code: number, reason: string): void {
    if (this.#exited) return;
    this.#exited = true;
    clearInterval(this.#monitor);
    this.#markExited();
    this.emit('exit', code, reason);
  }
}
