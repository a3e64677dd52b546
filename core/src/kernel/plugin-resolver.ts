import type { PluginManifest } from '@nucleus/sdk';
import semver from 'semver';

/** The outcome of resolving a set of plugins: an activation order and the reason each left-out plugin cannot run. */
export interface Resolution {
  /** Ids in an order where every plugin comes after what it requires. */
  order: string[];
  /** Plugin id → why it cannot be activated. */
  problems: Map<string, string>;
}

/**
 * Checks kernel-API and dependency ranges with semver and orders activation by dependencies.
 * Pure: it reads only the manifests it is given, so it can be tested on its own.
 */
export function resolvePlugins(manifests: readonly PluginManifest[], kernelApiVersion: string): Resolution {
  const byId = new Map(manifests.map((m) => [m.id, m]));
  const problems = new Map<string, string>();

  for (const m of manifests) {
    if (!semver.satisfies(kernelApiVersion, m.kernelApi)) {
      problems.set(m.id, `needs kernel API ${m.kernelApi}, but this kernel provides ${kernelApiVersion}`);
      continue;
    }
    for (const [dep, range] of Object.entries(m.requires ?? {})) {
      const found = byId.get(dep);
      if (!found) {
        problems.set(m.id, `requires plugin "${dep}" ${range}, which is not installed or not enabled`);
        break;
      }
      if (!semver.satisfies(found.version, range, { includePrerelease: true })) {
        problems.set(m.id, `requires plugin "${dep}" ${range}, but version ${found.version} is installed`);
        break;
      }
    }
  }

  for (const cycle of findCycles(manifests)) {
    const text = [...cycle, cycle[0]].join(' → ');
    for (const id of cycle) if (!problems.has(id)) problems.set(id, `dependency cycle: ${text}`);
  }

  // A plugin cannot run when something it requires cannot; repeat until nothing changes.
  for (let changed = true; changed; ) {
    changed = false;
    for (const m of manifests) {
      if (problems.has(m.id)) continue;
      const broken = Object.keys(m.requires ?? {}).find((dep) => problems.has(dep));
      if (broken) {
        problems.set(m.id, `requires plugin "${broken}", which cannot be activated: ${problems.get(broken)}`);
        changed = true;
      }
    }
  }

  const order: string[] = [];
  const placed = new Set<string>();
  const pending = manifests.filter((m) => !problems.has(m.id)).sort((a, b) => a.id.localeCompare(b.id));
  while (pending.length) {
    const index = pending.findIndex((m) => Object.keys(m.requires ?? {}).every((dep) => placed.has(dep)));
    const [next] = pending.splice(index, 1);
    order.push(next!.id);
    placed.add(next!.id);
  }
  return { order, problems };
}

/** Every dependency cycle among the manifests, each as the ids along it. */
export function findCycles(manifests: readonly PluginManifest[]): string[][] {
  const deps = new Map(manifests.map((m) => [m.id, Object.keys(m.requires ?? {})]));
  const cycles: string[][] = [];
  const state = new Map<string, 'visiting' | 'done'>();
  const stack: string[] = [];
  const visit = (id: string) => {
    state.set(id, 'visiting');
    stack.push(id);
    for (const dep of deps.get(id) ?? []) {
      if (!deps.has(dep)) continue;
      if (state.get(dep) === 'visiting') cycles.push(stack.slice(stack.indexOf(dep)));
      else if (!state.has(dep)) visit(dep);
    }
    stack.pop();
    state.set(id, 'done');
  };
  for (const id of [...deps.keys()].sort()) if (!state.has(id)) visit(id);
  return cycles;
}

/** Ids of the plugins that require `id`, directly or through others, in activation order. */
export function dependentsOf(id: string, manifests: readonly PluginManifest[], order: readonly string[]): string[] {
  const result = new Set<string>();
  let frontier = [id];
  while (frontier.length) {
    const next: string[] = [];
    for (const m of manifests) {
      if (result.has(m.id)) continue;
      if (Object.keys(m.requires ?? {}).some((dep) => frontier.includes(dep))) {
        result.add(m.id);
        next.push(m.id);
      }
    }
    frontier = next;
  }
  return order.filter((o) => result.has(o));
}
