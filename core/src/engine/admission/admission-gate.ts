import type { ConfigReader } from '../../kernel/config/index.js';
import { badRequest, type ExtensionPointView, type SchedulerStrategy } from '@nucleus/sdk';
import { AdmissionQueue, type Priority } from './admission-queue.js';

const RANK: Record<Priority, number> = { high: 0, normal: 1, low: 2 };

/** The order used when `scheduler.strategy` names `fifo`: arrival only. */
export const BUILTIN_FIFO: SchedulerStrategy = {
  name: 'fifo',
  order: (waiting) =>
    waiting
      .map((w, i) => [w.enqueuedAt, i] as const)
      .sort((a, b) => a[0] - b[0] || a[1] - b[1])
      .map(([, i]) => i),
};

/** The order used when no plugin contributes the configured strategy: high before normal before low, then arrival. */
export const BUILTIN_PRIORITY: SchedulerStrategy = {
  name: 'priority',
  order: (waiting) =>
    waiting
      .map((w, i) => ({ w, i }))
      .sort((a, b) => RANK[a.w.priority] - RANK[b.w.priority] || a.w.enqueuedAt - b.w.enqueuedAt || a.i - b.i)
      .map((x) => x.i),
};

/** Finds the queue strategy `name` among contributions, falling back to the built-in fifo or priority order. */
export function resolveStrategy(
  name: string | undefined,
  strategies: ExtensionPointView<SchedulerStrategy> | undefined,
): SchedulerStrategy {
  const contributed = name === undefined ? undefined : strategies?.find(name)?.value;
  if (contributed?.order) return contributed;
  return name === 'fifo' ? BUILTIN_FIFO : BUILTIN_PRIORITY;
}

/** What an {@link AdmissionGate} reads from the kernel; every value is read at each use, so runtime changes apply. */
export interface AdmissionGateOptions {
  config: ConfigReader;
  /** `schedulerStrategy` contributions; `scheduler.strategy` names one. */
  strategies?: ExtensionPointView<SchedulerStrategy> | undefined;
  /** Requests that may run at once; default `scheduler.maxRunning`. */
  capacity?: () => number;
  /** Told whenever the waiting depth changes. */
  onDepth?(depth: Record<Priority, number>): void;
}

/** Held running slots (one per unit of cost); releasing more than is held releases what is left, never more. */
export interface AdmissionSlot {
  /** Gives back `units` of the slots (default: all still held). */
  release(units?: number): void;
}

/** Per-request options of {@link AdmissionGate.acquire}. */
export interface AcquireOptions {
  priority?: Priority;
  /** Running slots the request takes at once (a multi-prompt completion takes one per prompt); default 1. */
  cost?: number;
  /** The request's own deadline, in ms from now; honoured when shorter than `queue.timeoutMs`. */
  deadlineMs?: number;
  signal?: AbortSignal;
}

/**
 * Bounds how many requests run at once: a request takes a free slot at once when nobody waits, otherwise it waits
 * in an {@link AdmissionQueue} (503 past the high watermark until it drains below the low one, 408 after
 * `queue.timeoutMs` or its own deadline, 499 when its client leaves). Freed slots go to waiting requests in the
 * configured strategy's order.
 */
export class AdmissionGate {
  readonly queue: AdmissionQueue<() => void>;
  #running = 0;
  readonly #offConfig: (() => void) | undefined;

  constructor(private readonly options: AdmissionGateOptions) {
    const { config } = options;
    this.queue = new AdmissionQueue({
      highWatermark: () => config.get('queue.highWatermark'),
      lowWatermark: () => config.get('queue.lowWatermark'),
      timeoutMs: () => config.get('queue.timeoutMs'),
      strategy: () => resolveStrategy(config.get('scheduler.strategy'), options.strategies),
      ...(options.onDepth && { onDepth: options.onDepth }),
    });
    // A raised limit lets waiting requests in at once, not at the next release.
    this.#offConfig = options.config.onChange?.((path) => {
      if (path.startsWith('scheduler.') || path.startsWith('queue.')) this.pump();
    });
  }

  /** Requests holding a slot. */
  get running(): number {
    return this.#running;
  }

  /** Requests waiting for a slot. */
  get waiting(): number {
    return this.queue.depth;
  }

  /** Requests that may run at once now (`scheduler.maxRunning`, or the capacity option). */
  get capacity(): number {
    return this.#capacity();
  }

  /**
   * Waits until `cost` running slots are free, all at once; rejects with the queue's 503, 408 or 499, or with 400
   * when the cost is more than the capacity, which could never be met.
   */
  async acquire(options: AcquireOptions = {}): Promise<AdmissionSlot> {
    const cost = options.cost ?? 1;
    const capacity = this.#capacity();
    if (!Number.isInteger(cost) || cost < 1)
      throw new RangeError(`an admission cost is a positive integer, not ${cost}`);
    if (cost > capacity) {
      throw badRequest(
        'exceeds_capacity',
        `the request needs ${cost} running slots at once, but at most ${capacity} run at once (scheduler.maxRunning)`,
      );
    }
    if (this.queue.depth === 0 && this.#running + cost <= capacity) return this.#grant(cost);
    let granted!: () => void;
    const taken = new Promise<void>((resolve) => (granted = resolve));
    const ticket = this.queue.admit(granted, {
      cost,
      ...(options.priority !== undefined && { priority: options.priority }),
      ...(options.deadlineMs !== undefined && { deadlineMs: options.deadlineMs }),
      ...(options.signal !== undefined && { signal: options.signal }),
    });
    // A slot may be free now (a release raced with this admission).
    this.pump();
    const outcome = await Promise.race([taken.then(() => undefined), ticket.rejected]);
    if (outcome) throw outcome;
    // The slots were counted when the ticket was taken.
    return this.#slot(cost);
  }

  /** Hands free slots to waiting requests, in strategy order, as long as the next one's cost fits. */
  pump(): void {
    const free = this.#capacity() - this.#running;
    if (free <= 0) return;
    for (const ticket of this.queue.takeWithin(free)) {
      this.#running += ticket.cost;
      ticket.payload();
    }
  }

  /** Stops following config changes. */
  close(): void {
    this.#offConfig?.();
  }

  #grant(cost: number): AdmissionSlot {
    this.#running += cost;
    return this.#slot(cost);
  }

  #slot(cost: number): AdmissionSlot {
    let held = cost;
    return {
      release: (units = held) => {
        const freed = Math.min(held, Math.max(0, units));
        if (freed === 0) return;
        held -= freed;
        this.#running -= freed;
        this.pump();
      },
    };
  }

  #capacity(): number {
    const fromOption = this.options.capacity?.();
    if (fromOption !== undefined) return Math.max(1, fromOption);
    return Math.max(1, this.options.config.get('scheduler.maxRunning'));
  }
}
