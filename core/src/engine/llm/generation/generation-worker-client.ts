import { NucleusError, unavailable, type WorkerReplicaStatus } from '@nucleus/sdk';
import { openFailure } from '../../allocation-failure.js';
import type { WorkerHandle, WorkerIsolation } from '../../workers/worker-handle.js';
import { WorkerSupervisor, type WorkerSupervisorOptions } from '../../workers/worker-supervisor.js';
import type {
  FromGenerationThread,
  GenerationThreadSpec,
  ToGenerationThread,
  WireEmbedRequest,
  WireGenerateRequest,
  WireStepStats,
} from './generation-messages.js';
import { EventChannel } from './event-channel.js';
import type { PrefixCacheStats } from '../prefix-cache/prefix-cache.js';
import type { SpeculationStats, StepRecovery } from './generation-loop.js';
import type { SchedulerSettings } from './scheduler.js';

/** What a generation thread reports once its session is open. */
export interface GenerationThreadReady {
  backend: string;
  fallbackReason?: string;
  maxContext: number;
  dimensions?: number;
  /** Why the configured prefix cache is off in this thread. */
  prefixCacheError?: string;
}

/** What the thread said about a submitted request. */
export interface Admission {
  promptTokens: number;
  maxTokens: number;
  /** Prompt tokens the prefix cache held at admission (absent without a cache). */
  cachedTokens?: number;
}

/** Hooks a {@link GenerationWorkerClient} calls with what the thread reports, for telemetry. */
export interface GenerationWorkerClientObserver {
  /** A group of events arrived, with the loop's state and the steps since the last group. */
  onGroup?(state: {
    running: number;
    waiting: number;
    steps: WireStepStats[];
    cache?: PrefixCacheStats;
    speculation?: SpeculationStats;
    /** The loop's step-recovery counters, when they changed; they count from zero in each new thread or process. */
    recovery?: StepRecovery;
    /** Which thread or process of the replica reported (its restarts so far): counters start again in a new one. */
    incarnation: number;
  }): void;
}

interface PendingAdmission {
  resolve(admission: Admission): void;
  reject(err: Error): void;
  channel?: EventChannel;
  n: number;
  buffered: boolean;
}

interface PendingEmbed {
  resolve(result: { vectors: Float32Array[]; promptTokens: number }): void;
  reject(err: Error): void;
  request: WireEmbedRequest;
}

/**
 * A submitted request that has produced nothing yet, or nothing anyone has read (buffered), so another or a restarted
 * worker can run it from the start.
 */
interface Resubmittable {
  request: WireGenerateRequest;
  /** Workers it was sent to. */
  attempts: number;
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
}

const THREAD_ENTRY = new URL('./generation-thread.js', import.meta.url);
// Workers a request that has produced nothing is sent to before it fails: a request that kills each one is not
// sent to the next for ever.
const MAX_ATTEMPTS = 3;

/**
 * The main thread's handle on one generation worker (a thread, or a child process with process isolation): submits
 * requests, relays the worker's token groups into each request's {@link EventChannel}, and sends cancellations. No
 * reply is ever awaited per step. When the worker dies it is restarted (with backoff); requests that have produced
 * nothing yet, and buffered ones whose partial output nobody has read (it is dropped), are run again from the start on
 * another replica or the new worker, and those already streaming fail with 503 `worker_exited`, since their client
 * has seen part of an answer that cannot be continued.
 */
export class GenerationWorkerClient {
  #worker: WorkerHandle | undefined;
  #ready: Promise<GenerationThreadReady> | undefined;
  #info: GenerationThreadReady | undefined;
  readonly #admissions = new Map<number, PendingAdmission>();
  readonly #channels = new Map<number, EventChannel>();
  readonly #embeds = new Map<number, PendingEmbed>();
  readonly #releases = new Map<number, { resolve(bytes: number): void; reject(err: Error): void }>();
  readonly #resubmittable = new Map<number, Resubmittable>();
  #nextId = 1;
  #closing = false;
  #running = 0;
  #waiting = 0;
  #state: WorkerReplicaStatus['state'] = 'starting';
  #finished = 0;
  #lastExit: string | undefined;

  readonly #supervisor: WorkerSupervisor;

  constructor(
    readonly spec: GenerationThreadSpec,
    private readonly options: GenerationWorkerClientOptions = {},
  ) {
    const { id: _id, reroute: _reroute, observer: _observer, ...supervision } = options;
    this.#supervisor = new WorkerSupervisor({ kind: 'generation', label: spec.label, ...supervision });
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
    return this.#channels.size + this.#admissions.size;
  }

  /** Sequences (choices) of the requests sent to it and not yet ended, counted on this side: no report lags. */
  get sequences(): number {
    let n = 0;
    for (const p of this.#admissions.values()) n += p.n;
    for (const c of this.#channels.values()) n += c.choices;
    return n;
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
      runs: this.#finished,
      pending: this.pending,
      running: this.#running,
      waiting: this.#waiting,
      ...(this.#state !== 'serving' && this.#lastExit !== undefined && { lastExit: this.#lastExit }),
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
    return this.#channels.size;
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
    const worker = this.#worker && !this.#closing ? this.#worker : await this.#live();
    if (signal?.aborted) throw abortError();
    const id = this.#nextId++;
    let pending!: PendingAdmission;
    const admission = await new Promise<Admission>((resolve, reject) => {
      pending = { resolve, reject, n: request.n, buffered: request.buffered === true };
      this.#admissions.set(id, pending);
      this.#resubmittable.set(id, { request, attempts: 1 });
      this.#send(worker, { type: 'submit', id, request });
    });
    // Taken from the admission, not from the map: a short request may have ended (and left the map) before this
    // continuation runs, when its admission and its events came in one read from a worker process.
    const channel = pending.channel!;
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
    const worker = await this.#live();
    if (signal?.aborted) throw abortError();
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      this.#embeds.set(id, { resolve, reject, request });
      this.#send(worker, { type: 'embed', id, request });
    });
  }

  /** Drops a conversation's prefix-cache blocks in the thread; resolves to the bytes freed (0 when no thread runs). */
  releaseConversation(conversationId: string): Promise<number> {
    const worker = this.#worker;
    if (!worker) return Promise.resolve(0);
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      this.#releases.set(id, { resolve, reject });
      this.#send(worker, { type: 'release', id, conversationId });
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
    this.#failAll(unavailable('model_unloading', `${this.spec.label} was stopped before the request finished`));
    if (worker) await this.#exit(worker, 0);
  }

  // Asks the worker to release its sessions and end after the current step; terminates it only if it does not.
  #exit(worker: WorkerHandle, code: number, timeoutMs = 10_000): Promise<void> {
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

  async #live(): Promise<WorkerHandle> {
    if (this.#closing) throw unavailable('model_unloading', `${this.spec.label} is stopping`);
    await this.start();
    const worker = this.#worker;
    if (!worker) throw unavailable('worker_unavailable', `the worker for ${this.spec.label} is not running`);
    return worker;
  }

  #send(worker: WorkerHandle, message: ToGenerationThread): void {
    worker.postMessage(message);
  }

  // `readerGone`: nobody reads the channel any more, so it is dropped at once; otherwise its reader still gets
  // the `cancelled` finishes the thread sends back — or, while no worker runs (a restart), a cancellation at once.
  #cancel(id: number, readerGone: boolean): void {
    const channel = this.#channels.get(id);
    if (!channel) return;
    if (readerGone) this.#end(id, channel);
    if (this.#worker) this.#send(this.#worker, { type: 'cancel', id });
    else if (!readerGone) {
      channel.fail(abortError());
      this.#end(id, channel);
    }
  }

  #spawn(): Promise<GenerationThreadReady> {
    return new Promise<GenerationThreadReady>((resolve, reject) => {
      const worker = this.#supervisor.spawn(THREAD_ENTRY, this.spec);
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
          case 'admitted': {
            const pending = this.#admissions.get(message.id);
            this.#admissions.delete(message.id);
            // No admission waits for a request sent again after a restart: its channel already exists.
            if (!pending) break;
            const channel = new EventChannel(pending.n, message.promptTokens, pending.buffered);
            const id = message.id;
            channel.cancel = (readerGone) => this.#cancel(id, readerGone);
            pending.channel = channel;
            this.#channels.set(message.id, channel);
            pending.resolve({
              promptTokens: message.promptTokens,
              maxTokens: message.maxTokens,
              ...(message.cachedTokens !== undefined && { cachedTokens: message.cachedTokens }),
            });
            break;
          }
          case 'rejected': {
            const pending = this.#admissions.get(message.id);
            this.#admissions.delete(message.id);
            this.#resubmittable.delete(message.id);
            const err = new NucleusError(
              message.status,
              message.code,
              message.message,
              message.param === undefined ? {} : { param: message.param },
            );
            pending?.reject(err);
            const channel = this.#channels.get(message.id);
            if (!pending && channel) {
              channel.fail(err);
              this.#end(message.id, channel);
            }
            break;
          }
          case 'events':
            this.#running = message.running;
            this.#waiting = message.waiting;
            // The worker is stepping: the deaths before it no longer count as in a row.
            this.#supervisor.progressed();
            for (const event of message.events) {
              // A buffered request can be run again until it ends: nobody has seen its events.
              if (!this.#resubmittable.get(event.id)?.request.buffered) this.#resubmittable.delete(event.id);
              const channel = this.#channels.get(event.id);
              if (!channel) continue;
              channel.push(event);
              if (channel.ended) {
                this.#finished++;
                this.#end(event.id, channel);
              }
            }
            this.options.observer?.onGroup?.({
              running: message.running,
              waiting: message.waiting,
              steps: message.steps,
              ...(message.cache && { cache: message.cache }),
              ...(message.speculation && { speculation: message.speculation }),
              ...(message.recovery && { recovery: message.recovery }),
              incarnation: this.restarts,
            });
            break;
          case 'released': {
            const pending = this.#releases.get(message.id);
            this.#releases.delete(message.id);
            pending?.resolve(message.bytes);
            break;
          }
          case 'embedded': {
            const pending = this.#embeds.get(message.id);
            this.#embeds.delete(message.id);
            pending?.resolve({ vectors: message.vectors, promptTokens: message.promptTokens });
            break;
          }
          case 'embed-error': {
            const pending = this.#embeds.get(message.id);
            this.#embeds.delete(message.id);
            pending?.reject(
              new NucleusError(
                message.status,
                message.code,
                message.message,
                message.param === undefined ? {} : { param: message.param },
              ),
            );
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
          this.#ready = undefined;
          return;
        }
        if (this.#worker !== worker) return;
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
        if (this.#closing) return this.#failAll(exited);
        this.#failStarted(exited);
        this.#handOff();
        this.#restart(why, exited);
      });
    });
  }

  // Fails what cannot be run again: requests whose client has seen part of an answer, and those sent to too many
  // workers already. The rest stay, to be sent to the next worker; a buffered one drops what it had produced.
  #failStarted(err: NucleusError): void {
    for (const [id, channel] of this.#channels) {
      const again = this.#resubmittable.get(id);
      if (again && again.attempts < MAX_ATTEMPTS && (!channel.started || channel.buffered)) {
        channel.restart();
        continue;
      }
      channel.fail(err);
      this.#end(id, channel);
    }
    for (const [id, pending] of this.#admissions) {
      if ((this.#resubmittable.get(id)?.attempts ?? MAX_ATTEMPTS) < MAX_ATTEMPTS) continue;
      this.#admissions.delete(id);
      this.#resubmittable.delete(id);
      pending.reject(err);
    }
    // A worker that ended took its cache with it: nothing is left to release.
    for (const p of this.#releases.values()) p.resolve(0);
    this.#releases.clear();
  }

  // Sends the requests that can run again (no token yet, or buffered) to other replicas that serve now, one by one as
  // the pool routes them; those no replica takes stay for this one's restart.
  #handOff(): void {
    const reroute = this.options.reroute;
    if (!reroute) return;
    let moved = 0;
    for (const [id, again] of this.#resubmittable) {
      const channel = this.#channels.get(id);
      const pending = this.#admissions.get(id);
      if (!channel && !pending) continue;
      const other = reroute(this);
      if (!other || other === this) break;
      this.#resubmittable.delete(id);
      this.#channels.delete(id);
      this.#admissions.delete(id);
      other.#adopt(again, channel, pending);
      moved++;
    }
    if (moved > 0)
      this.options.logger?.warn(
        { model: this.spec.label, replica: this.id, moved },
        'requests of a dead replica sent to the replicas that serve',
      );
  }

  // Takes over a request another replica held and had not started (or a buffered one, its partial output dropped): it
  // keeps its channel (or its waiting admission), which now hears from this replica.
  #adopt(again: Resubmittable, channel: EventChannel | undefined, pending: PendingAdmission | undefined): void {
    const id = this.#nextId++;
    this.#resubmittable.set(id, again);
    if (channel) {
      channel.cancel = (readerGone) => this.#cancel(id, readerGone);
      this.#channels.set(id, channel);
    } else if (pending) this.#admissions.set(id, pending);
    // A replica that is not running now sends it when it serves again (#resubmit counts the attempt then).
    if (this.#worker) {
      again.attempts++;
      this.#send(this.#worker, { type: 'submit', id, request: again.request });
    }
  }

  // Has the supervisor start a new worker and sends it what the dead one had not started; after too many deaths in a
  // row the worker is given up until the next request.
  #restart(why: string, exited: NucleusError): void {
    const requeued = this.#channels.size + this.#admissions.size + this.#embeds.size;
    const ready = this.#supervisor.died(why, `the worker exited (${why})`, {
      restart: () => this.#spawn(),
      gaveUp: (deaths) => {
        this.#failAll(
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
        this.#resubmit();
      },
      (err: unknown) => {
        this.#state = 'failed';
        if (this.#ready === ready) this.#ready = undefined;
        this.#failAll(
          new NucleusError(
            503,
            'worker_unavailable',
            `${exited.message}; a new worker could not start: ${(err as Error).message}`,
          ),
        );
      },
    );
  }

  // Sends the new worker the requests the dead one held and had not started (or buffered ones, from the start).
  #resubmit(): void {
    const worker = this.#worker;
    if (!worker) return;
    for (const [id, again] of this.#resubmittable) {
      if (!this.#channels.has(id) && !this.#admissions.has(id)) {
        this.#resubmittable.delete(id);
        continue;
      }
      again.attempts++;
      this.#send(worker, { type: 'submit', id, request: again.request });
    }
    for (const [id, pending] of this.#embeds) this.#send(worker, { type: 'embed', id, request: pending.request });
  }

  #end(id: number, channel: EventChannel): void {
    this.#channels.delete(id);
    this.#resubmittable.delete(id);
    channel.notifyEnd();
  }

  #failAll(err: NucleusError): void {
    this.#resubmittable.clear();
    for (const p of this.#admissions.values()) p.reject(err);
    for (const p of this.#embeds.values()) p.reject(err);
    // A thread that ended took its cache with it: nothing is left to release.
    for (const p of this.#releases.values()) p.resolve(0);
    this.#releases.clear();
    for (const c of this.#channels.values()) {
      c.fail(err);
      c.notifyEnd();
    }
    this.#admissions.clear();
    this.#embeds.clear();
    this.#channels.clear();
  }
}

function abortError(): NucleusError {
  return new NucleusError(499, 'request_aborted', 'the client closed the request');
}
