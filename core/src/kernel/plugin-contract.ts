import type { Contribution, PluginManifest, RouteContribution } from '@nucleus/sdk';
import { ExtensionPoints } from '@nucleus/sdk';
import type { StagedContribution } from './extension-registry.js';

/** The ids of the extension points the kernel defines; a plugin's own points are its business. */
const KERNEL_POINTS: ReadonlySet<string> = new Set(Object.values(ExtensionPoints).map((p) => p.id));

/** A plugin broke its contract at activation; `kind` says which rule, for the host to tell start-up apart. */
export class ContractError extends Error {
  override name = 'ContractError';

  constructor(
    readonly kind: 'provides' | 'route-conflict',
    message: string,
  ) {
    super(message);
  }
}

/** Start-up refused: plugins contribute the same route (method and path); the message names both plugins of each. */
export class RouteConflictError extends Error {
  override name = 'RouteConflictError';

  constructor(readonly conflicts: readonly string[]) {
    super(`plugins contribute the same route: ${conflicts.join('; ')}`);
  }
}

/**
 * Whether a contribution named `name` meets the declaration `declared`: the same name, or one in the group it names
 * (`openai-v1` is met by `openai-v1/POST /v1/chat/completions`), so a plugin with many routes declares each surface
 * once.
 */
function meets(declared: string, name: string): boolean {
  return name === declared || name.startsWith(`${declared}/`);
}

/**
 * Checks what an activation contributed against its manifest's `provides`. Every `point:name` entry must be met by a
 * contribution, or the activation fails naming the entry. Contributions to a kernel point that no entry covers are
 * returned, not refused: a plugin that declares nothing still runs, and the host warns with what to add.
 */
export function checkProvides(manifest: PluginManifest, staged: readonly StagedContribution[]): string[] {
  const declared = (manifest.provides ?? []).map((entry) => {
    const at = entry.indexOf(':');
    return { entry, point: entry.slice(0, at), name: entry.slice(at + 1) };
  });
  const unmet = declared.filter(
    (d) => !staged.some((s) => s.pointId === d.point && meets(d.name, s.contribution.name)),
  );
  if (unmet.length > 0) {
    const made = staged.map((s) => `${s.pointId}:${s.contribution.name}`);
    throw new ContractError(
      'provides',
      `its manifest provides ${unmet.map((d) => `"${d.entry}"`).join(', ')}, but activate() contributed ` +
        `${unmet.length === 1 ? 'no such thing' : 'none of these'} (it contributed ${made.length > 0 ? made.join(', ') : 'nothing'}); ` +
        'contribute it, or drop the entry from "provides"',
    );
  }
  return staged
    .filter((s) => KERNEL_POINTS.has(s.pointId))
    .filter((s) => !declared.some((d) => d.point === s.pointId && meets(d.name, s.contribution.name)))
    .map((s) => `${s.pointId}:${s.contribution.name}`);
}

/** `GET /v2/models/:model` and `GET /v2/models/:name` are one route: parameter names do not tell paths apart. */
function routeKey(route: RouteContribution): string {
  const path = route.path.replace(/:[^/]+/g, ':').replace(/(.)\/+$/, '$1');
  return `${route.method} ${path}`;
}

/**
 * Refuses routes (method and path) that another active plugin already serves, or that this activation contributes
 * twice: Koa would answer with whichever registered first, so one plugin would silently shadow the other. `active`
 * is the routes point as it is; the plugin's own earlier version (a reload) does not count.
 */
export function checkRoutes(
  manifest: PluginManifest,
  staged: readonly StagedContribution[],
  active: readonly Contribution<RouteContribution>[],
): void {
  const served = new Map<string, Contribution<RouteContribution>>();
  for (const c of active) if (c.pluginId !== manifest.id) served.set(routeKey(c.value), c);
  const own = new Set<string>();
  for (const s of staged) {
    if (s.pointId !== ExtensionPoints.routes.id) continue;
    const route = s.contribution.value as RouteContribution;
    const key = routeKey(route);
    const other = served.get(key);
    if (other) {
      throw new ContractError(
        'route-conflict',
        `route ${route.method} ${route.path} is contributed by both plugin "${other.pluginId}" ` +
          `(${other.pluginVersion}) and plugin "${manifest.id}" (${manifest.version}); ` +
          'disable one of them (plugins.disabled) or change its path',
      );
    }
    if (own.has(key))
      throw new ContractError(
        'route-conflict',
        `plugin "${manifest.id}" contributes route ${route.method} ${route.path} twice`,
      );
    own.add(key);
  }
}
