import { Worker } from 'node:worker_threads';
import { NucleusError, unavailable, type GenerationEvent, type Logger } from '@nucleus/sdk';
import type {
  FromGenerationThread,
  GenerationThreadSpec,
  ToGenerationThread,
  WireEmbedRequest,
  WireGenerateRequest,
  WireGenerationEvent,
  WireStepStats,
} from './generation-messages.js';
import type { PrefixCacheStats } from '../prefix-cache/prefix-cache.js';
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

/** Hooks a {@link GenerationWorker} calls with what the thread reports, for telemetry. */
export interface GenerationWorkerObserver {
  /** A group of events arrived, with the loop's state and the steps since the last group. */
  onGroup?(state: { running: number; waiting: number; steps: WireStepStats[]; cache?: PrefixCacheStats }): void;
}

/** The events of one admitted request as they arrive, consumed by one reader. */
export class EventChannel implements AsyncIterable<GenerationEvent> {
  #queue: GenerationEvent[] = [];
  #error: Error | undefined;
  #ended = false;
  #waiter: (() => void) | undefined;
  #finished = 0;
  #completionTokens = 0;
  #cachedTokens: number | undefined;
  /** Called once when the request has ended, to drop listeners. */
  onEnd: (() => void) | undefined;

  constructor(
    readonly choices: number,
    readonly promptTokens: number,
    private readonly onReturn: () => void,
  ) {}

  /** Whether the request has ended (done, failed, or given up by its reader). */
  get ended(): boolean {
    return this.#ended;
  }

  /** Adds an event from the thread; the last choice's finish adds the `done` event with usage. */
  push(event: WireGenerationEvent): void {
    if (this.#ended) return;
    if (event.kind === 'fail') return this.fail(new NucleusError(event.status, event.code, event.message));
    if (event.kind === 'token') {
      this.#queue.push({ type: 'token', index: event.index, tokenId: event.tokenId, text: event.text, sampledAt: event.sampledAt });
    } else {
      this.#finished++;
      this.#completionTokens += event.completionTokens;
      if (event.cachedTokens !== undefined) this.#cachedTokens = Math.max(this.#cachedTokens ?? 0, event.cachedTokens);
      this.#queue.push({
        type: 'finish',
        index: event.index,
        finishReason: event.reason,
        text: event.text,
        completionTokens: event.completionTokens,
        ...(event.stop !== undefined && { stopSequence: event.stop }),
      });
      if (this.#finished === this.choices) {
        const usage = {
          promptTokens: this.promptTokens,
          completionTokens: this.#completionTokens,
          totalTokens: this.promptTokens + this.#completionTokens,
          ...(this.#cachedTokens !== undefined && { cachedPromptTokens: this.#cachedTokens }),
        };
        this.#queue.push({ type: 'done', usage });
        this.#ended = true;
      }
    }
    this.#wake();
  }

  /** Ends the request with an error; the reader gets it after the events already queued. */
  fail(err: Error): void {
    if (this.#ended) return;
    this.#error = err;
    this.#ended = true;
    this.#wake();
  }

  [Symbol.asyncIterator](): AsyncIterator<GenerationEvent> {
    return {
      next: async () => {
        for (;;) {
          const event = this.#queue.shift();
          if (event) return { value: event, done: false };
          if (this.#error) throw this.#error;
          if (this.#ended) return { value: undefined, done: true };
          await new Promise<void>((resolve) => (this.#waiter = resolve));
        }
      },
      return: async () => {
        // The reader left early (a client that went away): the thread must drop the sequences.
        if (!this.#ended) {
          this.#ended = true;
          this.onReturn();
        }
        this.#queue = [];
        return { value: undefined, done: true };
      },
    };
  }

  #wake(): void {
    const w = this.#waiter;
    this.#waiter = undefined;
    w?.();
  }
}

interface PendingAdmission {
  resolve(admission: Admission): void;
  reject(err: Error): void;
  channel?: EventChannel;
  n: number;
}

interface PendingEmbed {
  resolve(result: { vectors: Float32Array[]; promptTokens: number }): void;
  reject(err: Error): void;
}

const THREAD_ENTRY = new URL('./generation-thread.js', import.meta.url);

/**
 * The main thread's handle on one generation thread: submits requests, relays the thread's token groups into
 * each request's {@link EventChannel}, and sends cancellations. No reply is ever awaited per step. When the
 * thread dies, every request it held fails with 503 and the next request starts a fresh thread.
 */
export class GenerationWorker {
  #worker: Worker | undefined;
  #ready: Promise<GenerationThreadReady> | undefined;
  #info: GenerationThreadReady | undefined;
  readonly #admissions = new Map<number, PendingAdmission>();
  readonly #channels = new Map<number, EventChannel>();
  readonly #embeds = new Map<number, PendingEmbed>();
  readonly #releases = new Map<number, { resolve(bytes: number): void; reject(err: Error): void }>();
  #nextId = 1;
  #closing = false;
  #running = 0;
  #waiting = 0;

  constructor(
    readonly spec: GenerationThreadSpec,
    private readonly options: { logger?: Logger; observer?: GenerationWorkerObserver } = {},
  ) {}

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
  async generate(request: WireGenerateRequest, signal?: AbortSignal): Promise<{ admission: Admission; events: EventChannel }> {
    const worker = await this.#live();
    if (signal?.aborted) throw abortError();
    const id = this.#nextId++;
    const admission = await new Promise<Admission>((resolve, reject) => {
      this.#admissions.set(id, { resolve, reject, n: request.n });
      this.#send(worker, { type: 'submit', id, request });
    });
    const channel = this.#channels.get(id)!;
    if (signal) {
      const onAbort = () => this.#cancel(id, false);
      if (signal.aborted) onAbort();
      else {
        signal.addEventListener('abort', onAbort, { once: true });
        channel.onEnd = () => signal.removeEventListener('abort', onAbort);
      }
    }
    return { admission, events: channel };
  }

  /** Embeds a batch of inputs in the thread. */
  async embed(request: WireEmbedRequest, signal?: AbortSignal): Promise<{ vectors: Float32Array[]; promptTokens: number }> {
    const worker = await this.#live();
    if (signal?.aborted) throw abortError();
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      this.#embeds.set(id, { resolve, reject });
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

  /** Ends the thread the way a crash would: its requests fail with 503 and the next request starts a fresh thread. */
  async kill(): Promise<void> {
    const worker = this.#worker;
    if (worker) await this.#exit(worker, 1);
  }

  /** Ends the thread; requests still running fail with 503 `model_unloading`. */
  async close(): Promise<void> {
    this.#closing = true;
    const worker = this.#worker;
    this.#worker = undefined;
    this.#failAll(unavailable('model_unloading', `${this.spec.label} was stopped before the request finished`));
    if (worker) await this.#exit(worker, 0);
  }

  // Asks the thread to release its sessions and end after the current step; terminates it only if it does not.
  #exit(worker: Worker, code: number, timeoutMs = 10_000): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = setTimeout(() => void worker.terminate().then(() => resolve()), timeoutMs);
      worker.once('exit', () => {
        clearTimeout(timer);
        resolve();
      });
      this.#send(worker, { type: 'exit', code });
    });
  }

  async #live(): Promise<Worker> {
    if (this.#closing) throw unavailable('model_unloading', `${this.spec.label} is stopping`);
    await this.start();
    const worker = this.#worker;
    if (!worker) throw unavailable('worker_unavailable', `the worker for ${this.spec.label} is not running`);
    return worker;
  }

  #send(worker: Worker, message: ToGenerationThread): void {
    worker.postMessage(message);
  }

  // `readerGone`: nobody reads the channel any more, so it is dropped at once; otherwise its reader still gets
  // the `cancelled` finishes the thread sends back.
  #cancel(id: number, readerGone: boolean): void {
    const channel = this.#channels.get(id);
    if (!channel) return;
    if (readerGone) this.#end(id, channel);
    if (this.#worker) this.#send(this.#worker, { type: 'cancel', id });
  }

  #spawn(): Promise<GenerationThreadReady> {
    return new Promise<GenerationThreadReady>((resolve, reject) => {
      const worker = new Worker(THREAD_ENTRY, { workerData: this.spec, name: `generation ${this.spec.label}` });
      let opened = false;
      let lastError: string | undefined;
      worker.on('message', (message: FromGenerationThread) => {
        switch (message.type) {
          case 'ready': {
            opened = true;
            this.#worker = worker;
            const { type: _type, ...info } = message;
            this.#info = info;
            resolve(info);
            break;
          }
          case 'init-error':
            reject(new NucleusError(500, message.code, `could not open ${this.spec.label}: ${message.message}`));
            void worker.terminate();
            break;
          case 'admitted': {
            const pending = this.#admissions.get(message.id);
            this.#admissions.delete(message.id);
            if (!pending) break;
            const channel = new EventChannel(pending.n, message.promptTokens, () => this.#cancel(message.id, true));
            this.#channels.set(message.id, channel);
            pending.resolve({ promptTokens: message.promptTokens, maxTokens: message.maxTokens, ...(message.cachedTokens !== undefined && { cachedTokens: message.cachedTokens }) });
            break;
          }
          case 'rejected': {
            const pending = this.#admissions.get(message.id);
            this.#admissions.delete(message.id);
            pending?.reject(new NucleusError(message.status, message.code, message.message, message.param === undefined ? {} : { param: message.param }));
            break;
          }
          case 'events':
            this.#running = message.running;
            this.#waiting = message.waiting;
            for (const event of message.events) {
              const channel = this.#channels.get(event.id);
              if (!channel) continue;
              channel.push(event);
              if (channel.ended) this.#end(event.id, channel);
            }
            this.options.observer?.onGroup?.({ running: message.running, waiting: message.waiting, steps: message.steps, ...(message.cache && { cache: message.cache }) });
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
            pending?.reject(new NucleusError(message.status, message.code, message.message, message.param === undefined ? {} : { param: message.param }));
            break;
          }
        }
      });
      worker.on('error', (err) => {
        lastError = err.message;
      });
      worker.on('exit', (code) => {
        if (!opened) {
          reject(new NucleusError(500, 'worker_exited', `the worker for ${this.spec.label} exited (code ${code}) before its session opened${lastError ? `: ${lastError}` : ''}`));
          this.#ready = undefined;
          return;
        }
        if (this.#worker !== worker) return;
        this.#worker = undefined;
        this.#ready = undefined;
        this.#running = 0;
        this.#waiting = 0;
        const why = lastError ? `it threw: ${lastError}` : `exit code ${code}`;
        this.options.logger?.warn({ model: this.spec.label, reason: why }, 'generation worker died; the next request starts a new one');
        this.#failAll(new NucleusError(503, 'worker_exited', `the worker running ${this.spec.label} stopped (${why}); the request was not completed, retry it`));
      });
    });
  }

  #end(id: number, channel: EventChannel): void {
    this.#channels.delete(id);
    channel.onEnd?.();
  }

  #failAll(err: NucleusError): void {
    for (const p of this.#admissions.values()) p.reject(err);
    for (const p of this.#embeds.values()) p.reject(err);
    // A thread that ended took its cache with it: nothing is left to release.
    for (const p of this.#releases.values()) p.resolve(0);
    this.#releases.clear();
    for (const c of this.#channels.values()) {
      c.fail(err);
      c.onEnd?.();
    }
    this.#admissions.clear();
    this.#embeds.clear();
    this.#channels.clear();
  }
}

function abortError(): NucleusError {
  return new NucleusError(499, 'request_aborted', 'the client closed the request');
}
