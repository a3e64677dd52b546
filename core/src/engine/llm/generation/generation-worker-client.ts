import { NucleusError, unavailable, type WorkerReplicaStatus } from '@nucleus/sdk';
import { openFailure } from '../../allocation-failure.js';
import type { WorkerIsolation } from '../../workers/worker-handle.js';
import {
  SharedSessionThread,
  type SessionWorker,
  type SharedSessionThreadOptions,
} from '../../workers/shared-session-thread.js';
import { WorkerSupervisor, type WorkerSupervisorOptions } from '../../workers/worker-supervisor.js';
import type {
  FromGenerationThread,
  GenerationThreadSpec,
  ToGenerationThread,
  WireEmbedRequest,
  WireGenerateRequest,
  WireStepStats,
} from './generation-messages.js';
import type { EventChannel } from './event-channel.js';
import { GenerationRequests, requestAborted, type Admission, type Released } from './generation-requests.js';
import type { PrefixCacheStats } from '../prefix-cache/prefix-cache.js';
import type { StepRecovery } from './generation-loop.js';
import type { SpeculationStats } from './speculative-step.js';
import type { SchedulerSettings } from './scheduler.js';

/** What a generation thread reports once its session is open. */
export interface GenerationThreadReady {
  backend: string;
  fallbackReason?: string;
  maxContext: number;
  dimensions?: number;
  /** Why the configured prefix cache is off in this thread. */
  prefixCacheError?: string;
  /** The prefix cache was restored from its file. */
  prefixCacheRestored?: { blocks: number; bytes: number };
  /** Why the prefix cache's file was not restored. */
  prefixCacheIgnored?: string;
}

/** What writing a replica's prefix cache to disk gave: blocks and bytes written, or why nothing was. */
export type PrefixCachePersisted = { blocks: number; bytes: number } | { error: string };

/** Hooks a {@link GenerationWorkerClient} calls with what the thread reports, for telemetry. */
export interface GenerationWorkerClientObserver {
  /** A group of events arrived, with the loop's state and the steps since the last group. */
  onGroup?(state: {
    running: number;
    waiting: number;
    /** The KV cache in use, 0 to 1. */
    kvUsage: number;
    steps: WireStepStats[];
    cache?: PrefixCacheStats;
    speculation?: SpeculationStats;
    /** The loop's step-recovery counters, when they changed; they count from zero in each new thread or process. */
    recovery?: StepRecovery;
    /** Which thread or process of the replica reported (its restarts so far): counters start again in a new one. */
    incarnation: number;
  }): void;
}

/** Options of a {@link GenerationWorkerClient}: its place among its model's replicas, and how its worker is supervised. */
export interface GenerationWorkerClientOptions extends Omit<WorkerSupervisorOptions, 'kind' | 'label'> {
  /** The replica's index within its model's pool, as `status()` and `worker.health` events show it. Default 0. */
  id?: number;
  /**
   * Another replica that serves now, for the requests this one held without a token when it died: they run there at
   * once instead of waiting for this one's restart. Without it (or when it returns nothing) they wait for the restart.
   */
  reroute?: (from: GenerationWorkerClient) => GenerationWorkerClient | undefined;
  observer?: GenerationWorkerClientObserver;
  /**
   * Open the model in this shared thread, beside other small models, rather than in a worker of its own (thread
   * isolation only; ignored with process isolation). See {@link sharedGenerationThread}.
   */
  shared?: SharedGenerationThread;
}

const THREAD_ENTRY = new URL('./generation-thread.js', import.meta.url);

/** What a generation client talks to: a worker of its own, or its model's channel in a shared generation thread. */
type GenerationWorker = SessionWorker<FromGenerationThread, ToGenerationThread>;

/** The worker thread small LLM and embedding models share, each with its generation loop, run in turn. */
export type SharedGenerationThread = SharedSessionThread<
  GenerationThreadSpec,
  FromGenerationThread,
  ToGenerationThread
>;

/**
 * A thread for small generation models to share (`workers.shareBelowBytes`), as tensor models share theirs: a worker
 * thread costs about 10 MiB whatever its model. A crash of the thread fails the requests in flight on it, of each of
 * its models, as the crash of a worker of their own would, and restarts them all in one new thread.
 */
export function sharedGenerationThread(
  options: Omit<SharedSessionThreadOptions, 'entry' | 'name'> = {},
): SharedGenerationThread {
  return new SharedSessionThread({ ...options, entry: THREAD_ENTRY, name: 'generation (shared)' });
}

/**
 * The main thread's handle on one generation worker (a thread, or a child process with process isolation): submits
 * requests, relays the worker's token groups into each request's {@link EventChannel}, and sends cancellations. No
 * reply is ever awaited per step. When the worker dies it is restarted (with backoff); requests that have produced
 * nothing yet, and buffered ones whose partial output nobody has read (it is dropped), are run again from the start on
 * another replica or the new worker, and those already streaming fail with 503 `worker_exited`, since their client
 * has seen part of an answer that cannot be continued.
 */
export class GenerationWorkerClient {
  #worker: GenerationWorker | undefined;
  #ready: Promise<GenerationThreadReady> | undefined;
  #info: GenerationThreadReady | undefined;
  readonly #requests = new GenerationRequests((message) => {
    if (!this.#worker) return false;
    this.#send(this.#worker, message);
    return true;
  });
  #closing = false;
  #running = 0;
  #waiting = 0;
  #state: WorkerReplicaStatus['state'] = 'starting';
  /** `persist` requests waiting for the thread's answer. */
  readonly #persisting = new Map<number, (result: PrefixCachePersisted) => void>();
  #nextPersist = 1;
  #lastExit: string | undefined;

  readonly #supervisor: WorkerSupervisor;
  readonly #shared: SharedGenerationThread | undefined;

  constructor(
    readonly spec: GenerationThreadSpec,
    private readonly options: GenerationWorkerClientOptions = {},
  ) {
    const { id: _id, reroute: _reroute, observer: _observer, shared, ...supervision } = options;
    this.#supervisor = new WorkerSupervisor({ kind: 'generation', label: spec.label, ...supervision });
    this.#shared = supervision.isolation === 'process' ? undefined : shared;
  }

  /** Whether the model runs in a thread shared with other small models. */
  get shared(): boolean {
    return this.#shared !== undefined;
  }

  /** Where the worker runs. */
  get isolation(): WorkerIsolation {
    return this.#supervisor.isolation;
  }

  /** The worker's process id (process isolation, while it runs). */
  get pid(): number | undefined {
    return this.#worker?.pid;
  }

  /** The worker process's resident memory as last measured (process isolation only). */
  get rssBytes(): number | undefined {
    return this.#worker?.rssBytes;
  }

  /** Times the worker died and was started again. */
  get restarts(): number {
    return this.#supervisor.restarts;
  }

  /** The replica's index within its model's pool. */
  get id(): number {
    return this.options.id ?? 0;
  }

  /** Whether its worker runs and takes requests (not starting, restarting or given up). */
  get serving(): boolean {
    return this.#state === 'serving' && this.#worker !== undefined && !this.#closing;
  }

  /** Requests sent to it and not yet ended. */
  get pending(): number {
    return this.#requests.pending;
  }

  /** Sequences (choices) of the requests sent to it and not yet ended, counted on this side: no report lags. */
  get sequences(): number {
    return this.#requests.sequences;
  }

  /** The worker as `/status`-style reports show it (`runs`: requests finished; `pending`: requests in it now). */
  status(): WorkerReplicaStatus {
    const pid = this.pid;
    const rssBytes = this.rssBytes;
    return {
      id: this.id,
      isolation: this.isolation,
      state: this.#state,
      ...(pid !== undefined && { pid }),
      ...(rssBytes !== undefined && { rssBytes }),
      restarts: this.restarts,
      runs: this.#requests.finished,
      pending: this.pending,
      running: this.#running,
      waiting: this.#waiting,
      ...(this.#state !== 'serving' && this.#lastExit !== undefined && { lastExit: this.#lastExit }),
      ...(this.#shared && { shared: true }),
    };
  }

  /** Starts the thread (once) and waits for its session; rejects with the session error. */
  start(): Promise<GenerationThreadReady> {
    this.#ready ??= this.#spawn();
    return this.#ready;
  }

  /** What the thread reported when it opened, once it has. */
  get info(): GenerationThreadReady | undefined {
    return this.#info;
  }

  /** Sequences running in the thread, as last reported. */
  get running(): number {
    return this.#running;
  }

  /** Sequences waiting in the thread, as last reported. */
  get waiting(): number {
    return this.#waiting;
  }

  /** Requests admitted and not yet ended. */
  get active(): number {
    return this.#requests.active;
  }

  /**
   * Submits a request; resolves once the thread has tokenized and admitted it (or rejects with its 400), with
   * the channel its events arrive on. Aborting `signal` cancels it wherever it is.
   */
  async generate(
    request: WireGenerateRequest,
    signal?: AbortSignal,
  ): Promise<{ admission: Admission; events: EventChannel }> {
    // A worker that serves takes the request in this very tick, so `sequences` counts it before anything else is routed.
    if (!this.#worker || this.#closing) await this.#live();
    if (signal?.aborted) throw requestAborted();
    // The channel comes with the admission: a short request may have ended (and left the requests) before this
    // continuation runs, when its admission and its events came in one read from a worker process.
    const { admission, channel } = await this.#requests.submit(request);
    if (signal && !channel.ended) {
      // Through the channel: the request may have moved to another replica by then.
      const onAbort = () => channel.cancel(false);
      if (signal.aborted) onAbort();
      else {
        signal.addEventListener('abort', onAbort, { once: true });
        channel.onEnd(() => signal.removeEventListener('abort', onAbort));
      }
    }
    return { admission, events: channel };
  }

  /** Embeds a batch of inputs in the thread. */
  async embed(
    request: WireEmbedRequest,
    signal?: AbortSignal,
  ): Promise<{ vectors: Float32Array[]; promptTokens: number }> {
    await this.#live();
    if (signal?.aborted) throw requestAborted();
    return this.#requests.embed(request);
  }

  /** Drops a conversation's prefix-cache blocks in the thread; resolves to the bytes freed and whether it had any. */
  releaseConversation(conversationId: string): Promise<Released> {
    if (!this.#worker) return Promise.resolve({ bytes: 0, found: false });
    return this.#requests.release(conversationId);
  }

  /**
   * Has the thread write its prefix cache to the file its spec names (`cache.prefix.persist`); resolves with what was
   * written, or why nothing was (no file configured, no thread running, a write error, the thread ended first).
   */
  persistPrefixCache(): Promise<PrefixCachePersisted> {
    const worker = this.#worker;
    if (!this.spec.prefixCache?.persist) return Promise.resolve({ error: 'prefix cache persistence is off' });
    if (!worker) return Promise.resolve({ error: 'no worker runs' });
    const id = this.#nextPersist++;
    return new Promise((resolve) => {
      this.#persisting.set(id, resolve);
      this.#send(worker, { type: 'persist', id });
    });
  }

  /** Changes the prefix cache's limit in the running thread (and in threads started later). */
  configurePrefixCache(maxBytes: number): void {
    if (this.spec.prefixCache) this.spec.prefixCache.maxBytes = maxBytes;
    if (this.#worker) this.#send(this.#worker, { type: 'configure', prefixCacheMaxBytes: maxBytes });
  }

  /** Changes the scheduler settings of the running thread. */
  configure(settings: Partial<SchedulerSettings>): void {
    Object.assign(this.spec.scheduler, settings);
    if (this.#worker) this.#send(this.#worker, { type: 'configure', scheduler: settings });
  }

  /**
   * Ends the worker the way a crash would (a process with SIGKILL, a thread after its current step): requests
   * already streaming fail with 503, the rest (buffered ones from the start) go to the restarted worker.
   */
  async kill(): Promise<void> {
    const worker = this.#worker;
    if (!worker) return;
    if (worker.killableMidRun) await worker.terminate();
    else await this.#exit(worker, 1);
  }

  /** Ends the thread; requests still running fail with 503 `model_unloading`. */
  async close(): Promise<void> {
    this.#closing = true;
    const worker = this.#worker;
    this.#worker = undefined;
    this.#requests.failAll(
      unavailable('model_unloading', `${this.spec.label} was stopped before the request finished`),
    );
    if (worker) await this.#exit(worker, 0);
  }

  // Asks the worker to release its sessions and end after the current step; terminates it only if it does not. In a
  // shared thread, ending with 0 (a close) releases only this model; another code ends the thread, as a crash would.
  #exit(worker: GenerationWorker, code: number, timeoutMs = 10_000): Promise<void> {
    if (code === 0 && this.#shared) return worker.terminate();
    return new Promise<void>((resolve) => {
      const timer = setTimeout(
        () => void worker.terminate('it did not end when asked; killed it').then(() => resolve()),
        timeoutMs,
      );
      void worker.exited.then(() => {
        clearTimeout(timer);
        resolve();
      });
      this.#send(worker, { type: 'exit', code });
    });
  }

  async #live(): Promise<GenerationWorker> {
    if (this.#closing) throw unavailable('model_unloading', `${this.spec.label} is stopping`);
    await this.start();
    const worker = this.#worker;
    if (!worker) throw unavailable('worker_unavailable', `the worker for ${this.spec.label} is not running`);
    return worker;
  }

  #send(worker: GenerationWorker, message: ToGenerationThread): void {
    worker.postMessage(message);
  }

  #spawn(): Promise<GenerationThreadReady> {
    return new Promise<GenerationThreadReady>((resolve, reject) => {
      const worker: GenerationWorker =
        this.#shared?.attach(this.spec) ?? this.#supervisor.spawn(THREAD_ENTRY, this.spec);
      let opened = false;
      worker.on('message', (message: FromGenerationThread) => {
        // A worker that has been replaced may still have messages on the way; its requests are someone else's now.
        if (opened && this.#worker !== worker) return;
        switch (message.type) {
          case 'ready': {
            opened = true;
            if (this.#closing) {
              // Stopped while this worker was starting: it must not outlive the model.
              void this.#exit(worker, 0);
              reject(unavailable('model_unloading', `${this.spec.label} was stopped while its worker was starting`));
              break;
            }
            this.#worker = worker;
            this.#state = 'serving';
            const { type: _type, ...info } = message;
            this.#info = info;
            resolve(info);
            break;
          }
          case 'init-error':
            reject(openFailure(this.spec.label, message.code, message.message));
            void worker.terminate();
            break;
          case 'events':
            this.#running = message.running;
            this.#waiting = message.waiting;
            // The worker is stepping: the deaths before it no longer count as in a row.
            this.#supervisor.progressed();
            this.#requests.deliver(message.events);
            this.options.observer?.onGroup?.({
              running: message.running,
              waiting: message.waiting,
              kvUsage: message.kvUsage,
              steps: message.steps,
              ...(message.cache && { cache: message.cache }),
              ...(message.speculation && { speculation: message.speculation }),
              ...(message.recovery && { recovery: message.recovery }),
              incarnation: this.restarts,
            });
            break;
          case 'persisted': {
            const resolve = this.#persisting.get(message.id);
            this.#persisting.delete(message.id);
            resolve?.(
              message.error !== undefined ? { error: message.error } : { blocks: message.blocks, bytes: message.bytes },
            );
            break;
          }
          default:
            this.#requests.reply(message);
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
          this.#ready = undefined;
          return;
        }
        if (this.#worker !== worker) return;
        for (const resolve of this.#persisting.values()) resolve({ error: `the worker exited (${why})` });
        this.#persisting.clear();
        this.#worker = undefined;
        this.#ready = undefined;
        this.#running = 0;
        this.#waiting = 0;
        this.#lastExit = `the worker exited (${why})`;
        this.#state = 'restarting';
        const exited = new NucleusError(
          503,
          'worker_exited',
          `the worker running ${this.spec.label} stopped (${why}); the request was not completed, retry it`,
        );
        if (this.#closing) return this.#requests.failAll(exited);
        this.#requests.failStarted(exited);
        this.#handOff();
        this.#restart(why, exited);
      });
    });
  }

  // Sends the requests that can run again (no token yet, or buffered) to other replicas that serve now, one by one as
  // the pool routes them; those no replica takes stay for this one's restart.
  #handOff(): void {
    const reroute = this.options.reroute;
    if (!reroute) return;
    const moved = this.#requests.handOff(() => {
      const other = reroute(this);
      return other ? other.#requests : undefined;
    });
    if (moved > 0)
      this.options.logger?.warn(
        { model: this.spec.label, replica: this.id, moved },
        'requests of a dead replica sent to the replicas that serve',
      );
  }

  // Has the supervisor start a new worker and sends it what the dead one had not started; after too many deaths in a
  // row the worker is given up until the next request.
  #restart(why: string, exited: NucleusError): void {
    const requeued = this.#requests.requeued;
    const ready = this.#supervisor.died(why, `the worker exited (${why})`, {
      restart: () => this.#spawn(),
      gaveUp: (deaths) => {
        this.#requests.failAll(
          unavailable(
            'worker_unavailable',
            `the worker for ${this.spec.label} died ${deaths} times in a row (last: ${why}); retry later`,
          ),
        );
        this.#state = 'failed';
      },
      context: { requeued },
    });
    if (!ready) return;
    this.#ready = ready;
    ready.then(
      () => {
        this.#supervisor.recovered({ pid: this.pid, requeued });
        if (this.#worker) this.#requests.resubmit();
      },
      (err: unknown) => {
        this.#state = 'failed';
        if (this.#ready === ready) this.#ready = undefined;
        this.#requests.failAll(
          new NucleusError(
            503,
            'worker_unavailable',
            `${exited.message}; a new worker could not start: ${(err as Error).message}`,
          ),
        );
      },
    );
  }
}
