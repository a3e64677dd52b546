import type { Schedulable, SchedulerStrategy } from '@nucleus/sdk';
import { NucleusError } from '@nucleus/sdk';

/** Request priorities, highest first. */
export const PRIORITIES = ['high', 'normal', 'low'] as const;

/** A request priority. */
export type Priority = (typeof PRIORITIES)[number];

/** Admission settings, read at each use so runtime config changes apply at once. */
export interface AdmissionSettings {
  /** Queued requests at which new ones are refused with 503. */
  highWatermark(): number;
  /** Queued requests below which admission reopens. */
  lowWatermark(): number;
  /** Longest a request may wait in the queue before it is answered 408. */
  timeoutMs(): number;
  /** The strategy that orders the waiting requests. */
  strategy(): SchedulerStrategy;
  /** Clock, for tests. */
  now?(): number;
  /** Told whenever the depth changes. */
  onDepth?(depth: Record<Priority, number>): void;
}

/** One admitted request while it waits. */
export interface Ticket<T> extends Schedulable {
  readonly payload: T;
  readonly priority: Priority;
  /** Settles with the reason when the request leaves the queue without being taken (timeout, deadline, abort). */
  readonly rejected: Promise<NucleusError>;
}

interface Entry<T> {
  ticket: Ticket<T>;
  reject: (err: NucleusError) => void;
  timer: NodeJS.Timeout;
  cleanup: () => void;
}

let nextId = 0;

/**
 * The waiting room in front of an engine: admits requests while the queue is below its high
 * watermark (and, once it reached it, not again until it drains below the low watermark), orders
 * them by the configured strategy, and answers those that wait too long. The engine takes work
 * from it; which request goes first is the strategy's business, not the engine's.
 */
export class AdmissionQueue<T> {
  private entries: Entry<T>[] = [];
  private shedding = false;
  private readonly listeners = new Set<() => void>();

  constructor(private readonly settings: AdmissionSettings) {}

  /** Requests waiting now. */
  get depth(): number {
    return this.entries.length;
  }

  /** Running slots the waiting requests ask for together (a multi-prompt request costs one per prompt); the watermarks compare this. */
  get queuedCost(): number {
    let cost = 0;
    for (const e of this.entries) cost += e.ticket.cost;
    return cost;
  }

  /** Whether new requests are being refused. */
  get isShedding(): boolean {
    return this.shedding;
  }

  /** Waiting requests by priority. */
  depthByPriority(): Record<Priority, number> {
    const depth = { high: 0, normal: 0, low: 0 };
    for (const e of this.entries) depth[e.ticket.priority]++;
    return depth;
  }

  /**
   * Admits a request or throws 503 (with Retry-After) while shedding load. `deadlineMs` is the
   * request's own deadline in milliseconds from now, honoured when shorter than `queue.timeoutMs`.
   */
  admit(
    payload: T,
    options: { priority?: Priority; cost?: number; deadlineMs?: number; signal?: AbortSignal } = {},
  ): Ticket<T> {
    this.updateShedding();
    if (this.shedding) {
      throw new NucleusError(
        503,
        'server_overloaded',
        `the server is at capacity (${this.queuedCost} generations queued, limit ${this.settings.highWatermark()}); retry shortly`,
        {
          headers: { 'retry-after': '1' },
        },
      );
    }
    if (options.signal?.aborted)
      throw new NucleusError(499, 'client_closed_request', 'the client went away before the request was queued');
    const now = this.now();
    let reject!: (err: NucleusError) => void;
    const rejected = new Promise<NucleusError>((resolve) => (reject = resolve));
    const ticket: Ticket<T> = {
      id: `q${++nextId}`,
      payload,
      priority: options.priority ?? 'normal',
      enqueuedAt: now,
      cost: options.cost ?? 1,
      rejected,
    };
    const queueTimeout = this.settings.timeoutMs();
    const ownDeadline = options.deadlineMs !== undefined && options.deadlineMs < queueTimeout;
    const waitMs = ownDeadline ? options.deadlineMs! : queueTimeout;
    const timer = setTimeout(() => {
      const message = ownDeadline
        ? `the request's deadline of ${options.deadlineMs} ms passed while it waited in the queue`
        : `the request waited longer than queue.timeoutMs (${queueTimeout} ms) in the queue`;
      this.drop(entry, new NucleusError(408, 'queue_timeout', message));
    }, waitMs);
    timer.unref?.();
    const onAbort = () =>
      this.drop(
        entry,
        new NucleusError(499, 'client_closed_request', 'the client went away while the request was queued'),
      );
    options.signal?.addEventListener('abort', onAbort, { once: true });
    const entry: Entry<T> = {
      ticket,
      reject,
      timer,
      cleanup: () => options.signal?.removeEventListener('abort', onAbort),
    };
    this.entries.push(entry);
    this.changed();
    for (const listener of this.listeners) listener();
    return ticket;
  }

  /** Takes up to `max` requests in the strategy's order, skipping those `accept` refuses. */
  take(max: number, accept: (ticket: Ticket<T>) => boolean = () => true): Ticket<T>[] {
    if (max <= 0 || !this.entries.length) return [];
    const strategy = this.settings.strategy();
    const waiting = this.entries.map((e) => e.ticket);
    const order = strategy.order ? strategy.order(waiting, this.now()) : waiting.map((_, i) => i);
    const taken = new Set<number>();
    for (const i of order) {
      if (taken.size >= max) break;
      if (accept(this.entries[i]!.ticket)) taken.add(i);
    }
    const out: Entry<T>[] = [];
    this.entries = this.entries.filter((e, i) => (taken.has(i) ? (out.push(e), false) : true));
    for (const e of out) this.settle(e);
    if (out.length) this.changed();
    return order.filter((i) => taken.has(i)).map((i) => waiting[i]!);
  }

  /**
   * Takes requests in the strategy's order while their costs fit in `budget`, stopping at the first that does not
   * fit: a costly request at the head is never overtaken by cheaper ones, so it cannot starve.
   */
  takeWithin(budget: number): Ticket<T>[] {
    let left = budget;
    let stopped = false;
    return this.take(Number.MAX_SAFE_INTEGER, (ticket) => {
      if (stopped || ticket.cost > left) {
        stopped = true;
        return false;
      }
      left -= ticket.cost;
      return true;
    });
  }

  /** Calls `listener` whenever a request is admitted, so an idle engine loop can wake. */
  onAdmit(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => void this.listeners.delete(listener);
  }

  /** Answers every waiting request with `error` (shutdown). */
  rejectAll(error: NucleusError): void {
    for (const e of this.entries.splice(0)) {
      this.settle(e);
      e.reject(error);
    }
    this.changed();
  }

  private drop(entry: Entry<T>, error: NucleusError): void {
    const index = this.entries.indexOf(entry);
    if (index < 0) return;
    this.entries.splice(index, 1);
    this.settle(entry);
    entry.reject(error);
    this.changed();
  }

  private settle(entry: Entry<T>): void {
    clearTimeout(entry.timer);
    entry.cleanup();
  }

  private changed(): void {
    this.updateShedding();
    this.settings.onDepth?.(this.depthByPriority());
  }

  private updateShedding(): void {
    const queued = this.queuedCost;
    if (!this.shedding && queued >= this.settings.highWatermark()) this.shedding = true;
    else if (this.shedding && queued < this.settings.lowWatermark()) this.shedding = false;
  }

  private now(): number {
    return this.settings.now?.() ?? Date.now();
  }
}
