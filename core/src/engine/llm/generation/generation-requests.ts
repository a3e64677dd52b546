import { NucleusError } from '@nucleus/sdk';
import { EventChannel } from './event-channel.js';
import type {
  FromGenerationThread,
  ToGenerationThread,
  WireEmbedRequest,
  WireGenerateRequest,
  WireGenerationEvent,
} from './generation-messages.js';

/** What the thread said about a submitted request. */
export interface Admission {
  promptTokens: number;
  maxTokens: number;
  /** Prompt tokens the prefix cache held at admission (absent without a cache). */
  cachedTokens?: number;
}

/** A thread's reply to one request: everything it sends but its start-up and its event groups. */
export type RequestReply = Exclude<FromGenerationThread, { type: 'ready' | 'init-error' | 'events' | 'persisted' }>;

interface PendingAdmission {
  resolve(admitted: { admission: Admission; channel: EventChannel }): void;
  reject(err: Error): void;
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

// Workers a request that has produced nothing is sent to before it fails: a request that kills each one is not
// sent to the next for ever.
const MAX_ATTEMPTS = 3;

/** What a worker answered to a release: the bytes freed, and whether its cache held blocks of the conversation. */
export interface Released {
  bytes: number;
  found: boolean;
}

/**
 * The requests one generation worker holds, from the main thread's side: those waiting for their admission, the
 * admitted ones with the channel their events go to, embeddings and cache releases waiting for their reply, and which
 * of them could run again from the start on another worker. Request ids are this replica's; what the worker sends
 * about a request lands here.
 */
export class GenerationRequests {
  readonly #admissions = new Map<number, PendingAdmission>();
  readonly #channels = new Map<number, EventChannel>();
  readonly #embeds = new Map<number, PendingEmbed>();
  readonly #releases = new Map<number, { resolve(released: Released): void; reject(err: Error): void }>();
  readonly #resubmittable = new Map<number, Resubmittable>();
  /** Sends to the worker that runs now; false when none does. */
  readonly #send: (message: ToGenerationThread) => boolean;
  #nextId = 1;
  #finished = 0;

  constructor(send: (message: ToGenerationThread) => boolean) {
    this.#send = send;
  }

  /** Requests sent and not yet ended. */
  get pending(): number {
    return this.#channels.size + this.#admissions.size;
  }

  /** Requests admitted and not yet ended. */
  get active(): number {
    return this.#channels.size;
  }

  /** Requests finished so far. */
  get finished(): number {
    return this.#finished;
  }

  /** Sequences (choices) of the requests sent and not yet ended. */
  get sequences(): number {
    let n = 0;
    for (const p of this.#admissions.values()) n += p.n;
    for (const c of this.#channels.values()) n += c.choices;
    return n;
  }

  /** Requests and embeddings a new worker would be sent again. */
  get requeued(): number {
    return this.#channels.size + this.#admissions.size + this.#embeds.size;
  }

  /** Sends a request; resolves once the thread has admitted it (or rejects with its 400), with its channel. */
  submit(request: WireGenerateRequest): Promise<{ admission: Admission; channel: EventChannel }> {
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      this.#admissions.set(id, { resolve, reject, n: request.n, buffered: request.buffered === true });
      this.#resubmittable.set(id, { request, attempts: 1 });
      this.#send({ type: 'submit', id, request });
    });
  }

  /** Sends a batch of inputs to embed; resolves with the vectors. */
  embed(request: WireEmbedRequest): Promise<{ vectors: Float32Array[]; promptTokens: number }> {
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      this.#embeds.set(id, { resolve, reject, request });
      this.#send({ type: 'embed', id, request });
    });
  }

  /** Asks the worker to drop a conversation's prefix-cache blocks; resolves to the bytes freed and whether it had any. */
  release(conversationId: string): Promise<Released> {
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      this.#releases.set(id, { resolve, reject });
      this.#send({ type: 'release', id, conversationId });
    });
  }

  /** Hands a group of events to their requests' channels. */
  deliver(events: readonly WireGenerationEvent[]): void {
    for (const event of events) {
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
  }

  /** Settles what waits for a reply of the thread. */
  reply(message: RequestReply): void {
    switch (message.type) {
      case 'admitted': {
        const pending = this.#admissions.get(message.id);
        this.#admissions.delete(message.id);
        // No admission waits for a request sent again after a restart: its channel already exists.
        if (!pending) break;
        const channel = new EventChannel(pending.n, message.promptTokens, pending.buffered);
        const id = message.id;
        channel.cancel = (readerGone) => this.#cancel(id, readerGone);
        this.#channels.set(id, channel);
        pending.resolve({
          admission: {
            promptTokens: message.promptTokens,
            maxTokens: message.maxTokens,
            ...(message.cachedTokens !== undefined && { cachedTokens: message.cachedTokens }),
          },
          channel,
        });
        break;
      }
      case 'rejected': {
        const pending = this.#admissions.get(message.id);
        this.#admissions.delete(message.id);
        this.#resubmittable.delete(message.id);
        const err = replyError(message);
        pending?.reject(err);
        const channel = this.#channels.get(message.id);
        if (!pending && channel) {
          channel.fail(err);
          this.#end(message.id, channel);
        }
        break;
      }
      case 'released': {
        const pending = this.#releases.get(message.id);
        this.#releases.delete(message.id);
        pending?.resolve({ bytes: message.bytes, found: message.found });
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
        pending?.reject(replyError(message));
        break;
      }
    }
  }

  /**
   * After the worker died: fails what cannot be run again — requests whose client has seen part of an answer, and
   * those sent to too many workers already. The rest stay, to be sent to the next worker; a buffered one drops what it
   * had produced.
   */
  failStarted(err: NucleusError): void {
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
    for (const p of this.#releases.values()) p.resolve({ bytes: 0, found: false });
    this.#releases.clear();
  }

  /**
   * Moves the requests that can run again (no token yet, or buffered) to the requests of other replicas, one by one as
   * `next` routes them, until it gives none; the number moved.
   */
  handOff(next: () => GenerationRequests | undefined): number {
    let moved = 0;
    for (const [id, again] of this.#resubmittable) {
      const channel = this.#channels.get(id);
      const pending = this.#admissions.get(id);
      if (!channel && !pending) continue;
      const other = next();
      if (!other || other === this) break;
      this.#resubmittable.delete(id);
      this.#channels.delete(id);
      this.#admissions.delete(id);
      other.#adopt(again, channel, pending);
      moved++;
    }
    return moved;
  }

  /** Sends a new worker the requests the dead one held and had not started (or buffered ones, from the start). */
  resubmit(): void {
    for (const [id, again] of this.#resubmittable) {
      if (!this.#channels.has(id) && !this.#admissions.has(id)) {
        this.#resubmittable.delete(id);
        continue;
      }
      again.attempts++;
      this.#send({ type: 'submit', id, request: again.request });
    }
    for (const [id, pending] of this.#embeds) this.#send({ type: 'embed', id, request: pending.request });
  }

  /** Fails every request held. */
  failAll(err: NucleusError): void {
    this.#resubmittable.clear();
    for (const p of this.#admissions.values()) p.reject(err);
    for (const p of this.#embeds.values()) p.reject(err);
    // A thread that ended took its cache with it: nothing is left to release.
    for (const p of this.#releases.values()) p.resolve({ bytes: 0, found: false });
    this.#releases.clear();
    for (const c of this.#channels.values()) {
      c.fail(err);
      c.notifyEnd();
    }
    this.#admissions.clear();
    this.#embeds.clear();
    this.#channels.clear();
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
    // A replica that is not running now sends it when it serves again (`resubmit` counts the attempt then).
    if (this.#send({ type: 'submit', id, request: again.request })) again.attempts++;
  }

  // `readerGone`: nobody reads the channel any more, so it is dropped at once; otherwise its reader still gets
  // the `cancelled` finishes the thread sends back — or, while no worker runs (a restart), a cancellation at once.
  #cancel(id: number, readerGone: boolean): void {
    const channel = this.#channels.get(id);
    if (!channel) return;
    if (readerGone) this.#end(id, channel);
    if (!this.#send({ type: 'cancel', id }) && !readerGone) {
      channel.fail(requestAborted());
      this.#end(id, channel);
    }
  }

  #end(id: number, channel: EventChannel): void {
    this.#channels.delete(id);
    this.#resubmittable.delete(id);
    channel.notifyEnd();
  }
}

/** The error of a request whose client went away. */
export function requestAborted(): NucleusError {
  return new NucleusError(499, 'request_aborted', 'the client closed the request');
}

function replyError(message: { status: number; code: string; message: string; param?: string }): NucleusError {
  return new NucleusError(
    message.status,
    message.code,
    message.message,
    message.param === undefined ? {} : { param: message.param },
  );
}
