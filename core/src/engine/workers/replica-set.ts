/** How a {@link ReplicaSet} makes, opens, drains and closes one replica. */
export interface ReplicaLifecycle<W, R> {
  /** Makes a replica, not yet open. */
  create(): W;
  /** Opens a replica; it takes work once this resolves. */
  start(replica: W): Promise<R>;
  /** Resolves once a retired replica has finished the work it held (it is closed next). */
  idle(replica: W): Promise<void>;
  /** Closes a replica: one that is retired and idle, one that opened too late or not at all, or all of them at the end. */
  close(replica: W): Promise<void>;
}

/** What the pool built on a {@link ReplicaSet} does at each moment of its replicas' lives. */
export interface ReplicaSetHooks<W> {
  /** A replica made to grow the set could not open; it is closed and not kept, and the set stays smaller until the next resize. */
  onOpenFailed?(replica: W, error: unknown): void;
  /** A grow ended: the replicas that opened now take work. */
  onAdded?(): void;
  /** A shrink began: `retired` take no new work and close once idle. */
  onRetiring?(retired: readonly W[]): void;
  /**
   * A replica left the set while it serves: one made to grow it and not kept (it failed to open, or the set closed
   * meanwhile; it closes next), or a retired one that has closed.
   */
  onRemoved?(replica: W): void;
  /** The set is closing: it takes no more resizes, and its replicas close next. */
  onClose?(): void;
}

/**
 * The lifecycle shared by a pool's replicas: open them all at start, grow and shrink while serving, close them at
 * the end. Growing opens new replicas and keeps those that opened; shrinking moves the surplus to a retiring set
 * that takes no new work and closes each once it is idle, so no work is dropped. Resizes run one after the other,
 * and a target changed while one runs is applied next. What a replica is and what counts as its work stay with the
 * pool.
 */
export class ReplicaSet<W, R = void> {
  #active: W[] = [];
  readonly #retiring = new Set<W>();
  #target: number;
  #resizing: Promise<void> = Promise.resolve();
  #started = false;
  #closed = false;

  constructor(
    size: number,
    private readonly lifecycle: ReplicaLifecycle<W, R>,
    private readonly hooks: ReplicaSetHooks<W> = {},
  ) {
    this.#target = Math.max(1, size);
    for (let i = 0; i < this.#target; i++) this.#active.push(lifecycle.create());
  }

  /** The replicas taking new work (not those being retired). */
  get active(): readonly W[] {
    return this.#active;
  }

  /** The replicas being retired: they take no new work and close once idle. */
  get retiring(): ReadonlySet<W> {
    return this.#retiring;
  }

  /** Every replica, those being retired included. */
  get all(): W[] {
    return [...this.#active, ...this.#retiring];
  }

  /** Whether {@link close} was called (or {@link start} failed). */
  get closed(): boolean {
    return this.#closed;
  }

  /** Opens every replica and resolves to what the first one answered; rejects (after closing the rest) when any cannot open. */
  async start(): Promise<R> {
    const results = await Promise.allSettled(this.#active.map((w) => this.lifecycle.start(w)));
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) {
      await this.close();
      throw failed.reason;
    }
    this.#started = true;
    return (results[0] as PromiseFulfilledResult<R>).value;
  }

  /**
   * Grows or shrinks the set to `size` replicas (at least one). Before {@link start} has opened the set, or after it
   * closed, only the target is recorded.
   */
  resize(size: number): Promise<void> {
    this.#target = Math.max(1, size);
    const step = async (): Promise<void> => {
      if (this.#closed || !this.#started) return;
      const target = this.#target;
      if (target > this.#active.length) {
        const added = Array.from({ length: target - this.#active.length }, () => this.lifecycle.create());
        const results = await Promise.allSettled(added.map((w) => this.lifecycle.start(w)));
        for (const [i, r] of results.entries()) {
          const w = added[i]!;
          if (r.status === 'fulfilled' && !this.#closed) this.#active.push(w);
          else {
            if (r.status === 'rejected') this.hooks.onOpenFailed?.(w, r.reason);
            this.hooks.onRemoved?.(w);
            void this.lifecycle.close(w);
          }
        }
        this.hooks.onAdded?.();
      } else if (target < this.#active.length) {
        const retired = this.#active.slice(target);
        this.#active = this.#active.slice(0, target);
        this.hooks.onRetiring?.(retired);
        await Promise.all(retired.map((w) => this.#retire(w)));
      }
      // A change made while this one was under way is applied next. Replicas that failed to open are not tried again
      // here (one that can never open would be retried for ever): the set stays smaller until the next resize.
      if (this.#target !== target && !this.#closed) await step();
    };
    this.#resizing = this.#resizing.then(step, step);
    return this.#resizing;
  }

  /** Closes every replica, retiring ones included, with `close` (default: the lifecycle's). */
  async close(close: (replica: W) => Promise<void> = (w) => this.lifecycle.close(w)): Promise<void> {
    this.#closed = true;
    this.hooks.onClose?.();
    await Promise.all(this.all.map(close));
  }

  async #retire(replica: W): Promise<void> {
    this.#retiring.add(replica);
    try {
      await this.lifecycle.idle(replica);
      await this.lifecycle.close(replica);
    } finally {
      this.#retiring.delete(replica);
      this.hooks.onRemoved?.(replica);
    }
  }
}
