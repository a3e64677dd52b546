import type { Contribution, EventBus, ExtensionPointRef } from '@nucleus/sdk';
import type { ActivationLease } from './activation-lease.js';
import { ExtensionPoint } from './extension-point.js';

/** A contribution made during activation, published only once activation succeeds. */
export interface StagedContribution {
  pointId: string;
  contribution: Contribution<unknown>;
}

/** All extension points of one kernel, by id. Plugins may declare points of their own. */
export class ExtensionRegistry {
  private readonly points = new Map<string, ExtensionPoint<unknown>>();

  constructor(private readonly events: EventBus) {}

  /** The point with this id, created on first use. */
  point<T>(ref: ExtensionPointRef<T> | string): ExtensionPoint<T> {
    const id = typeof ref === 'string' ? ref : ref.id;
    let point = this.points.get(id);
    if (!point) this.points.set(id, (point = new ExtensionPoint<unknown>(id)));
    return point as ExtensionPoint<T>;
  }

  /** Every point's id with its contributions, for the admin API. */
  describe(): Array<{
    id: string;
    contributions: Array<{ name: string; pluginId: string; pluginVersion: string; priority: number }>;
  }> {
    return [...this.points.values()].map((p) => ({
      id: p.id,
      contributions: p
        .list()
        .map(({ name, pluginId, pluginVersion, priority }) => ({ name, pluginId, pluginVersion, priority })),
    }));
  }

  /**
   * Replaces everything `previous` contributed with `staged` (held by `next`), across all points at
   * once, then announces the changes. With `previous` undefined this is a first activation; with
   * `staged` empty it is a removal.
   */
  commit(
    previous: ActivationLease | undefined,
    next: ActivationLease | undefined,
    staged: readonly StagedContribution[],
  ): void {
    const touched = new Set<string>(staged.map((s) => s.pointId));
    if (previous) for (const point of this.points.values()) touched.add(point.id);
    const changes: Array<{
      point: ExtensionPoint<unknown>;
      removed: Contribution<unknown>[];
      added: Contribution<unknown>[];
    }> = [];
    // All swaps happen before any listener runs, so no listener sees a half-swapped kernel.
    for (const id of touched) {
      const point = this.point<unknown>(id);
      const add = next
        ? staged.filter((s) => s.pointId === id).map((s) => ({ contribution: s.contribution, lease: next }))
        : [];
      const { removed, added } = point.swap(previous, add);
      if (removed.length || added.length) changes.push({ point, removed, added });
    }
    for (const { point, removed, added } of changes) {
      for (const c of removed) this.announce(point, 'removed', c);
      for (const c of added) this.announce(point, 'added', c);
    }
  }

  private announce(point: ExtensionPoint<unknown>, change: 'added' | 'removed', c: Contribution<unknown>): void {
    point.notify(change, c);
    this.events.emit('extension.changed', { point: point.id, change, pluginId: c.pluginId, name: c.name });
  }
}
