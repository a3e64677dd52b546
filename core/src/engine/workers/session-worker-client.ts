import { NucleusError, unavailable, type Logger, type Tensor, type WorkerReplicaStatus } from '@nucleus/sdk';
import { openFailure } from '../allocation-failure.js';
import type { SessionWorker, SharedSessionThread } from './shared-session-thread.js';
import type { WorkerIsolation } from './worker-handle.js';
import { WorkerSupervisor, type WorkerSupervisorOptions } from './worker-supervisor.js';
import {
  packTensors,
  unpackTensors,
  type FromWorker,
  type SessionWorkerSpec,
  type ToWorker,
  type WireValueMetadata,
} from './worker-messages.js';

/** What a worker reports once its session is open. */
export interface SessionReady {
  /** The backend the session really runs on. */
  backend: string;
  fallbackReason?: string;
  /** True when ORT rejected the chosen backend's provider and the session fell back. */
  rejected: boolean;
  inputs: WireValueMetadata[];
  outputs: WireValueMetadata[];
}

/** The outputs of one run and how long ORT took. */
export interface RunResult {
  outputs: Record<string, Tensor>;
  runMs: number;
}

/** Options of a {@link SessionWorkerClient}: how its worker is supervised, and how long a run may take. */
export interface SessionWorkerClientOptions extends Omit<WorkerSupervisorOptions, 'kind' | 'label'> {
  /** A run unanswered after this long (ms, read per run; 0 = never) marks the thread hung: it is replaced and its runs fail with 503 `worker_hung`. */
  runTimeoutMs?: () => number;
  /**
   * Open the session in this shared thread, beside other small models, rather than in a worker of its own (thread
   * isolation only). Its runs take turns with theirs, and a crash or hang of the thread restarts them all.
   */
  shared?: SharedSessionThread;
}

interface Pending {
  resolve(result: RunResult): void;
  reject(err: Error): void;
  /** The worker it was posted to, and when (`performance.now()`) it counts as hung: Infinity without a limit. */
  worker: SessionWorker;
  deadline: number;
  timeoutMs: number;
}

const THREAD_ENTRY = new URL('./session-thread.js', import.meta.url);

/**
 * One worker — a thread, a child process with process isolation, or a session in a thread shared with other small
 * models ({@link SharedSessionThread}) — owning one ORT session. Runs cross as messages (transferred buffers to a
 * thread, advanced-serialized copies to a process). When the worker dies, every run it was holding is rejected at
 * once (503 `worker_exited`) and its {@link WorkerSupervisor} starts a fresh one after a backoff; runs sent meanwhile
 * wait for it.
 */
export class SessionWorkerClient {
  #worker: SessionWorker | undefined;
  #state: WorkerReplicaStatus['state'] = 'starting';
  #control: Int32Array | undefined;
  #exited: Promise<void> = Promise.resolve();
  #ready: Promise<SessionReady> | undefined;
  #info: SessionReady | undefined;
  readonly #pending = new Map<number, Pending>();
  // One timer for the earliest deadline of the runs posted, rather than a timer set and cleared per run.
  #watchdog: NodeJS.Timeout | undefined;
  #watchAt = Infinity;
  #nextId = 1;
  #assigned = 0;
  #runs = 0;
  #closing = false;
  #lastExit: string | undefined;
  readonly #log: Logger | undefined;
  readonly #runTimeoutMs: SessionWorkerClientOptions['runTimeoutMs'];
  readonly #supervisor: WorkerSupervisor;
  readonly #shared: SharedSessionThread | undefined;

  constructor(
    readonly spec: SessionWorkerSpec,
    options: SessionWorkerClientOptions = {},
  ) {
    const { runTimeoutMs, shared, ...supervision } = options;
    this.#log = options.logger;
    this.#runTimeoutMs = runTimeoutMs;
    this.#shared = supervision.isolation === 'process' ? undefined : shared;
    this.#supervisor = new WorkerSupervisor({ kind: 'session', label: spec.label, ...supervision });
  }

  /** Whether the session runs in a thread shared with other small models. */
  get shared(): boolean {
    return this.#shared !== undefined;
  }

  /** Where this worker runs. */
  get isolation(): WorkerIsolation {
    return this.#supervisor.isolation;
  }

  /** Starts the thread and opens the session; rejects with the session error when it cannot be opened. */
  start(): Promise<SessionReady> {
    this.#ready ??= this.#spawn();
    return this.#ready;
  }

  /** Runs the session once; rejects with 503 `worker_exited` when the thread dies before answering. */
  async run(inputs: Record<string, Tensor>): Promise<RunResult> {
    // Counted from the call, not from the post, so a pool choosing the least busy worker sees runs still starting.
    this.#assigned++;
    try {
      const result = await this.#run(inputs);
      this.#runs++;
      return result;
    } finally {
      this.#assigned--;
    }
  }

  async #run(inputs: Record<string, Tensor>): Promise<RunResult> {
    if (this.#closing) throw unavailable('model_unloading', `${this.spec.label} is being unloaded`);
    const ready = this.#ready ?? this.start();
    await ready;
    const worker = this.#worker;
    if (!worker || this.#closing)
      throw unavailable(
        'worker_unavailable',
        `the worker for ${this.spec.label} is not running${this.#lastExit ? ` (${this.#lastExit})` : ''}`,
      );
    const id = this.#nextId++;
    const { wire, transfer } = packTensors(inputs);
    const timeoutMs = this.#runTimeoutMs?.() ?? 0;
    return new Promise<RunResult>((resolve, reject) => {
      const deadline = timeoutMs > 0 ? performance.now() + timeoutMs : Infinity;
      this.#pending.set(id, { resolve, reject, worker, deadline, timeoutMs });
      const message: ToWorker = { type: 'run', id, inputs: wire };
      worker.postMessage(message, transfer);
      if (deadline < this.#watchAt) this.#watch(deadline);
    });
  }

  #watch(at: number): void {
    clearTimeout(this.#watchdog);
    this.#watchAt = at;
    this.#watchdog = setTimeout(() => this.#checkDeadlines(), Math.max(0, at - performance.now()));
    this.#watchdog.unref();
  }

  // The first run past its deadline marks its worker hung; otherwise the watch moves to the next deadline.
  #checkDeadlines(): void {
    this.#watchdog = undefined;
    this.#watchAt = Infinity;
    const now = performance.now();
    let next = Infinity;
    for (const p of this.#pending.values()) {
      if (p.deadline > now) next = Math.min(next, p.deadline);
      else if (p.worker === this.#worker && !this.#closing) return this.#hung(p.worker, p.timeoutMs);
    }
    if (next < Infinity) this.#watch(next);
  }

  /** Test support only: keeps the worker busy for `ms` without answering, as a run hung in native code would. */
  testOnlyBlock(ms: number): void {
    const message: ToWorker = { type: 'test-block', ms };
    this.#worker?.postMessage(message);
  }

  // A hung process is killed (SIGKILL: nothing of it lives in this process). A thread cannot be ended while ORT is
  // inside a run (that aborts the whole process), so a hung one is cut loose: told to exit once its run returns, no
  // longer waited for. Either way a fresh worker replaces it.
  #hung(worker: SessionWorker, timeoutMs: number): void {
    if (this.#worker !== worker || this.#closing) return;
    this.#worker = undefined;
    const why = `a run did not finish within ${timeoutMs} ms (workers.runTimeoutMs)`;
    if (worker.killableMidRun) void worker.terminate(`the worker hung (${why}); killed it`);
    else {
      if (this.#control) Atomics.store(this.#control, 0, 1);
      worker.unref();
    }
    this.#lastExit = `the worker hung (${why})`;
    this.#log?.error(
      { model: this.spec.label, timeoutMs, pid: worker.pid },
      worker.killableMidRun ? 'session worker hung; killed it' : 'session worker hung; replacing it',
    );
    this.#rejectAll(
      new NucleusError(
        503,
        'worker_hung',
        `the worker running ${this.spec.label} hung: ${why}; it was replaced and the request was not completed, retry it`,
      ),
    );
    this.#died(why);
  }

  /** Runs asked for and not yet answered. */
  get pending(): number {
    return this.#assigned;
  }

  /** Runs answered so far. */
  get runs(): number {
    return this.#runs;
  }

  /** Times the worker died and was started again. */
  get restarts(): number {
    return this.#supervisor.restarts;
  }

  /** The worker's process id (process isolation, while it runs). */
  get pid(): number | undefined {
    return this.#worker?.pid;
  }

  /** The worker process's resident memory as last measured (process isolation only; undefined for a thread). */
  get rssBytes(): number | undefined {
    return this.#worker?.rssBytes;
  }

  /** What `/status` shows about this worker. */
  status(id: number): WorkerReplicaStatus {
    const pid = this.pid;
    const rssBytes = this.rssBytes;
    return {
      id,
      isolation: this.isolation,
      ...(this.#shared && { shared: true }),
      state: this.#state,
      ...(pid !== undefined && { pid }),
      ...(rssBytes !== undefined && { rssBytes }),
      restarts: this.restarts,
      runs: this.#runs,
      pending: this.#assigned,
      ...(this.#state !== 'serving' && this.#lastExit !== undefined && { lastExit: this.#lastExit }),
    };
  }

  /** What the session reported when it opened. */
  get info(): SessionReady | undefined {
    return this.#info;
  }

  /**
   * Ends the worker the way a crash would: every pending run is rejected and a fresh worker takes over. A process
   * is killed at once (SIGKILL); in a thread the run in progress finishes inside ORT (ending a thread mid-run aborts
   * the process) but is never answered.
   */
  async kill(): Promise<void> {
    const worker = this.#worker;
    if (!worker) return;
    const exited = this.#exited;
    if (worker.killableMidRun) {
      await worker.terminate();
      await exited;
      return;
    }
    if (this.#control) Atomics.store(this.#control, 0, 1);
    const message: ToWorker = { type: 'exit', code: 70 };
    worker.postMessage(message);
    await exited;
  }

  /**
   * Waits up to `drainMs` for pending runs, then asks the thread to release its session and end; runs still pending
   * are rejected. A thread stuck in a long run is left to end on its own rather than cut off mid-run.
   */
  async close(drainMs = 10_000): Promise<void> {
    this.#closing = true;
    const deadline = Date.now() + drainMs;
    while (this.#assigned > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    const worker = this.#worker;
    this.#worker = undefined;
    this.#rejectAll(unavailable('model_unloading', `${this.spec.label} was unloaded before the request finished`));
    if (!worker) return;
    const exited = this.#exited;
    const message: ToWorker = { type: 'close' };
    worker.postMessage(message);
    let timer: NodeJS.Timeout | undefined;
    const gaveUp = await Promise.race([
      exited.then(() => false),
      new Promise<boolean>((r) => (timer = setTimeout(() => r(true), Math.max(5000, drainMs)))),
    ]);
    clearTimeout(timer);
    if (gaveUp && worker.killableMidRun) {
      this.#log?.warn(
        { model: this.spec.label, pid: worker.pid },
        'session worker process did not end after close; killed it',
      );
      await worker.terminate('it did not end after close; killed it');
    } else if (gaveUp) {
      worker.unref();
      this.#log?.warn({ model: this.spec.label }, 'session worker is still in a run; leaving it to end after the run');
    }
  }

  #spawn(): Promise<SessionReady> {
    return new Promise<SessionReady>((resolve, reject) => {
      // A thread reads its kill flag from shared memory (a shared thread has one for all its sessions); a process is
      // simply killed, so it needs none.
      const shared = this.#shared?.attach(this.spec);
      const control = !shared && this.isolation === 'thread' ? new SharedArrayBuffer(4) : undefined;
      const worker: SessionWorker =
        shared ?? this.#supervisor.spawn(THREAD_ENTRY, { ...this.spec, ...(control && { control }) });
      const exited = worker.exited;
      let opened = false;
      worker.on('message', (message: FromWorker) => {
        switch (message.type) {
          case 'ready': {
            opened = true;
            if (this.#closing) {
              // Closed while this replacement thread was starting: it must not outlive the model.
              const close: ToWorker = { type: 'close' };
              worker.postMessage(close);
              reject(unavailable('model_unloading', `${this.spec.label} was unloaded while its worker was starting`));
              break;
            }
            this.#worker = worker;
            this.#control = shared ? shared.control : control && new Int32Array(control);
            this.#exited = exited;
            this.#state = 'serving';
            const { type: _type, session: _session, ...info } = message;
            this.#info = info;
            if (this.restarts > 0) this.#supervisor.recovered({ pid: worker.pid });
            resolve(info);
            break;
          }
          case 'init-error':
            reject(openFailure(this.spec.label, message.code, message.message));
            void worker.terminate();
            break;
          case 'result': {
            this.#supervisor.progressed();
            const p = this.#pending.get(message.id);
            this.#pending.delete(message.id);
            p?.resolve({ outputs: unpackTensors(message.outputs), runMs: message.runMs });
            break;
          }
          case 'error': {
            this.#supervisor.progressed();
            const p = this.#pending.get(message.id);
            this.#pending.delete(message.id);
            p?.reject(new NucleusError(500, message.code, `${this.spec.label} failed to run: ${message.message}`));
            break;
          }
        }
      });
      worker.on('exit', (_code: number, why: string) => {
        if (!opened) {
          reject(
            new NucleusError(
              500,
              'worker_exited',
              `the worker for ${this.spec.label} exited before its session opened (${why})`,
            ),
          );
          return;
        }
        if (this.#worker !== worker) return;
        this.#worker = undefined;
        this.#lastExit = `the worker exited (${why})`;
        this.#rejectAll(
          new NucleusError(
            503,
            'worker_exited',
            `the worker running ${this.spec.label} stopped (${why}) before answering; the request was not completed, retry it`,
          ),
        );
        if (this.#closing) return;
        this.#died(why);
      });
    });
  }

  // Has the supervisor start a new worker, or give up once the worker has died too often in a row.
  #died(why: string): void {
    this.#state = 'restarting';
    const ready = this.#supervisor.died(why, this.#lastExit ?? why, {
      restart: () => this.#spawn(),
      gaveUp: (deaths) => {
        this.#state = 'failed';
        this.#ready = Promise.reject(
          unavailable(
            'worker_unavailable',
            `the worker for ${this.spec.label} died ${deaths} times in a row (last: ${why}); reload the model`,
          ),
        );
        this.#ready.catch(() => undefined);
      },
    });
    if (!ready) return;
    ready.catch(() => {
      this.#state = 'failed';
    });
    this.#ready = ready;
  }

  #rejectAll(err: Error): void {
    const pending = [...this.#pending.values()];
    this.#pending.clear();
    clearTimeout(this.#watchdog);
    this.#watchdog = undefined;
    this.#watchAt = Infinity;
    for (const p of pending) p.reject(err);
  }
}
