import type { Contribution, ExtensionPointView } from '@nucleus/sdk';
import type { ActivationLease } from './activation-lease.js';

type ChangeListener<T> = (change: 'added' | 'removed', contribution: Contribution<T>) => void;

interface Entry<T> {
  contribution: Contribution<T>;
  lease: ActivationLease;
  /** Insertion order, so equal priorities keep a stable order. */
  seq: number;
}

/** Releases a use's lease, and takes it off the list of leases its caller holds, if any. */
function releaseHeld(lease: ActivationLease, held: unknown[] | undefined): void {
  if (held) held.splice(held.indexOf(lease), 1);
  lease.release();
}

/** One extension point: its contributors, ordered by priority, and the change listeners. */
export class ExtensionPoint<T> implements ExtensionPointView<T> {
  private entries: Entry<T>[] = [];
  private readonly listeners = new Set<ChangeListener<T>>();
  /** Kept past removal: a contribution swapped out a moment ago is still held by its old instance's lease. */
  private readonly leases = new WeakMap<Contribution<T>, ActivationLease>();
  private seq = 0;
  private listed?: readonly Contribution<T>[];

  constructor(readonly id: string) {}

  list(): readonly Contribution<T>[] {
    // Read for every request (hooks, routers): made again only when the contributions change.
    this.listed ??= Object.freeze(this.entries.map((e) => e.contribution));
    return this.listed;
  }

  first(): Contribution<T> | undefined {
    return this.entries[0]?.contribution;
  }

  find(name: string): Contribution<T> | undefined {
    return this.entries.find((e) => e.contribution.name === name)?.contribution;
  }

  use<R>(contribution: Contribution<T>, fn: (value: T) => R | Promise<R>, held?: unknown[]): Promise<R> {
    // Called for every hook and route of every request: no async frame of its own, the lease is released when what
    // `fn` returned settles.
    const lease = this.leases.get(contribution);
    if (!lease) {
      try {
        return Promise.resolve(fn(contribution.value));
      } catch (err) {
        return Promise.reject(err);
      }
    }
    lease.acquire();
    held?.push(lease);
    let result: R | Promise<R>;
    try {
      result = fn(contribution.value);
    } catch (err) {
      releaseHeld(lease, held);
      return Promise.reject(err);
    }
    if (typeof (result as { then?: unknown } | undefined)?.then !== 'function') {
      releaseHeld(lease, held);
      return Promise.resolve(result);
    }
    // Without `held` (the routes of every request), the lease's own callbacks: no closure made per use.
    if (!held) return Promise.resolve(result).then(lease.settled, lease.failed);
    return Promise.resolve(result).then(
      (value) => {
        releaseHeld(lease, held);
        return value;
      },
      (err: unknown) => {
        releaseHeld(lease, held);
        throw err;
      },
    );
  }

  onChange(listener: ChangeListener<T>): () => void {
    this.listeners.add(listener);
    return () => void this.listeners.delete(listener);
  }

  /**
   * Removes every contribution held by `remove` and adds `add`, in one step: no caller ever
   * sees the point with both or neither. Returns the changes so the caller can announce them.
   */
  swap(
    remove: ActivationLease | undefined,
    add: ReadonlyArray<{ contribution: Contribution<T>; lease: ActivationLease }>,
  ) {
    const removed = remove ? this.entries.filter((e) => e.lease === remove) : [];
    const kept = remove ? this.entries.filter((e) => e.lease !== remove) : this.entries;
    const added = add.map((a) => ({ ...a, seq: this.seq++ }));
    for (const a of added) this.leases.set(a.contribution, a.lease);
    this.listed = undefined;
    this.entries = [...kept, ...added].sort(
      (a, b) => b.contribution.priority - a.contribution.priority || a.seq - b.seq,
    );
    return { removed: removed.map((e) => e.contribution), added: added.map((e) => e.contribution) };
  }

  /** Tells this point's listeners about a change. */
  notify(change: 'added' | 'removed', contribution: Contribution<T>): void {
    for (const listener of this.listeners) {
      try {
        listener(change, contribution);
      } catch {
        // A listener's failure is its own; the change has happened either way.
      }
    }
  }
}
