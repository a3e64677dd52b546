import { EventEmitter } from 'node:events';
import type { Logger } from '@nucleus/sdk';
import { WorkerHandle } from './worker-handle.js';
import type { FromWorker, SessionWorkerSpec, SharedSessionThreadSpec, ToWorker } from './worker-messages.js';

const THREAD_ENTRY = new URL('./session-thread.js', import.meta.url);

/**
 * What a client talks to: a worker of its own, or its model's channel in a {@link SharedSessionThread}. `From` and
 * `To`: the messages of the worker's protocol (a session worker's by default).
 */
export interface SessionWorker<From = FromWorker, To = ToWorker>
  extends Pick<WorkerHandle, 'terminate' | 'unref' | 'exited' | 'killableMidRun' | 'pid' | 'rssBytes'> {
  postMessage(message: To, transfer?: ArrayBuffer[]): void;
  /** `message` (a message from the worker) and `exit` (code, reason), as {@link WorkerHandle} emits them. */
  on(event: 'message', listener: (message: From) => void): unknown;
  on(event: 'exit', listener: (code: number, why: string) => void): unknown;
}

/**
 * The thread's own messages to a worker body that can serve several models in one thread (session-thread.js,
 * generation-thread.js). Started with a {@link SharedSessionThreadSpec}, such a body opens a model per `open` and
 * releases it per `close` (answering `closed`), and every message to it or from it about a model names it in `session`.
 */
type SharedThreadControl<Spec> =
  | { type: 'open'; session: number; spec: Spec }
  | { type: 'close'; session?: number }
  | { type: 'exit'; code: number };

/** Options of a {@link SharedSessionThread}. */
export interface SharedSessionThreadOptions {
  /** See `WorkerHandleOptions.niceness` (read each time the thread starts). */
  niceness?: () => number;
  logger?: Logger;
  /** The worker body the thread runs, and the thread's name; by default the session worker's (`session (shared)`). */
  entry?: URL;
  name?: string;
}

/**
 * One worker thread that holds the sessions of several small models and runs them in turn. A worker thread costs
 * about 10 MiB (its V8 isolate and Node environment) whatever its model, which for a model of a few hundred KiB that
 * runs in microseconds is nearly all of its memory; such models share this one instead (`workers.shareBelowBytes`).
 *
 * Each model's client gets a {@link SessionChannel} that behaves as a worker of its own: its messages are tagged
 * with its session, and it ends (`exit`) when its session is closed or when the thread dies. When the thread dies —
 * a crash, a `kill`, or a run that hung and made it be given up — every channel on it ends with the reason, each
 * client fails only its own runs in flight and restarts, and the restarts open their sessions in one new thread.
 * The thread ends once its last session is closed; the next model to attach starts a fresh one.
 *
 * The worker body is the session worker's by default; generation models share one that runs the generation worker's
 * (`sharedGenerationThread`), where each model's generation loop takes its turn. `Spec`, `From` and `To` are the
 * body's spec and messages.
 */
export class SharedSessionThread<
  Spec extends { label: string } = SessionWorkerSpec,
  From extends { type: string; session?: number } = FromWorker,
  To extends { type: string } = ToWorker,
> {
  #thread: WorkerHandle | undefined;
  #control: Int32Array | undefined;
  readonly #channels = new Map<number, SessionChannel<From, To>>();
  #nextSession = 1;

  constructor(private readonly options: SharedSessionThreadOptions = {}) {}

  /** Opens a session for `spec` in the thread (starting the thread if none runs): `ready` or `init-error` follows. */
  attach(spec: Spec): SessionChannel<From, To> {
    const thread = this.#thread ?? this.#start();
    const channel = new SessionChannel<From, To>(this, thread, this.#nextSession++, spec.label, this.#control!);
    this.#channels.set(channel.session, channel);
    this.#post(thread, { type: 'open', session: channel.session, spec });
    return channel;
  }

  // The thread's own messages (open, close, exit), which every protocol it runs shares.
  #post(thread: WorkerHandle, message: SharedThreadControl<Spec>): void {
    thread.postMessage(message);
  }

  /** The labels of the sessions the thread holds now, for logs and tests. */
  get sessions(): string[] {
    return [...this.#channels.values()].filter((c) => c.thread === this.#thread).map((c) => c.label);
  }

  /** Whether a thread runs now. */
  get running(): boolean {
    return this.#thread !== undefined;
  }

  #start(): WorkerHandle {
    const control = new SharedArrayBuffer(4);
    const data: SharedSessionThreadSpec = { shared: true, control };
    const thread = WorkerHandle.spawn(this.options.entry ?? THREAD_ENTRY, data, {
      isolation: 'thread',
      name: this.options.name ?? 'session (shared)',
      niceness: this.options.niceness?.() ?? 0,
    });
    this.#thread = thread;
    this.#control = new Int32Array(control);
    thread.on('message', (message: From) => {
      const channel = message.session === undefined ? undefined : this.#channels.get(message.session);
      if (channel?.thread !== thread) return;
      if (message.type === 'closed') this.#end(channel, 0, 'its session was closed');
      else channel.emit('message', message);
    });
    thread.on('exit', (code: number, why: string) => {
      if (this.#thread === thread) this.#thread = undefined;
      this.#endAll(thread, code, `the worker thread it shares with other models ended: ${why}`);
    });
    return thread;
  }

  /** The channel's session is done with: its client closed it, or its session never opened. */
  detach(channel: SessionChannel<From, To>, code: number, why: string): void {
    if (channel.ended) return;
    if (this.#thread === channel.thread) this.#post(channel.thread, { type: 'close', session: channel.session });
    this.#end(channel, code, why);
  }

  /**
   * A client gave up on the thread while it is inside a run (it hung): ORT cannot be interrupted and a thread cannot
   * be ended mid-run, so the thread is cut loose to exit once the run returns, and every session on it moves on.
   */
  abandon(channel: SessionChannel<From, To>): void {
    const thread = channel.thread;
    if (this.#thread === thread) {
      this.#thread = undefined;
      if (this.#control) Atomics.store(this.#control, 0, 1);
      thread.unref();
      this.options.logger?.warn(
        { sessions: this.sessions.length, hung: channel.label },
        'shared session worker hung; its sessions move to a new thread',
      );
    }
    this.#endAll(thread, 70, `the worker thread it shares with other models was given up: ${channel.label} hung`);
  }

  #endAll(thread: WorkerHandle, code: number, why: string): void {
    for (const channel of [...this.#channels.values()]) if (channel.thread === thread) this.#end(channel, code, why);
  }

  #end(channel: SessionChannel<From, To>, code: number, why: string): void {
    this.#channels.delete(channel.session);
    channel.end(code, why);
    // The last session closed: the thread has nothing left to do.
    const thread = this.#thread;
    if (thread && ![...this.#channels.values()].some((c) => c.thread === thread)) {
      this.#thread = undefined;
      this.#post(thread, { type: 'exit', code: 0 });
    }
  }
}

/** What a channel asks of its {@link SharedSessionThread}. */
interface ChannelHost {
  detach(channel: SessionChannel<never, never>, code: number, why: string): void;
  abandon(channel: SessionChannel<never, never>): void;
}

/**
 * One model's session in a {@link SharedSessionThread}, seen as a worker of its own: messages to it carry its
 * session, it hears only its session's answers, and it ends when its session is closed or the thread ends.
 */
export class SessionChannel<From = FromWorker, To extends { type: string } = ToWorker>
  extends EventEmitter
  implements SessionWorker<From, To>
{
  #ended = false;
  readonly #exit: Promise<void>;
  #markExited: () => void = () => undefined;

  constructor(
    private readonly host: ChannelHost,
    readonly thread: WorkerHandle,
    readonly session: number,
    readonly label: string,
    /** The thread's kill flag: a client that sets it makes the whole thread exit before its next run. */
    readonly control: Int32Array,
  ) {
    super();
    this.#exit = new Promise<void>((resolve) => (this.#markExited = resolve));
  }

  /** A thread cannot be ended inside a run, and neither can its sessions. */
  get killableMidRun(): boolean {
    return false;
  }

  get pid(): number | undefined {
    return undefined;
  }

  get rssBytes(): number | undefined {
    return undefined;
  }

  get exited(): Promise<void> {
    return this.#exit;
  }

  get ended(): boolean {
    return this.#ended;
  }

  /**
   * Sends the session a message. `exit` (a crash, as `kill` asks for) and `test-block` act on the whole thread,
   * as they would on a thread of its own: every session sharing it sees the same.
   */
  postMessage(message: To, transfer: ArrayBuffer[] = []): void {
    if (this.#ended) return;
    if (message.type === 'close') this.thread.postMessage({ ...message, session: this.session });
    else if (message.type === 'exit' || message.type === 'test-block') this.thread.postMessage(message);
    else this.thread.postMessage({ ...message, session: this.session }, transfer);
  }

  /** Closes the session now (the thread and the other sessions go on). */
  async terminate(): Promise<void> {
    this.host.detach(this, 1, 'it was terminated');
  }

  /** The client gave up waiting for the thread (a run hung): the thread is cut loose, see {@link SharedSessionThread.abandon}. */
  unref(): void {
    this.host.abandon(this);
  }

  /** Called by the host: the session is gone (closed, or the thread ended). */
  end(code: number, why: string): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#markExited();
    this.emit('exit', code, why);
  }
}
