import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** A plugin to write as a fixture: its manifest fields and the body of its `activate(ctx)`. */
export interface FixturePlugin {
  id: string;
  version?: string;
  requires?: Record<string, string>;
  kernelApi?: string;
  configSchema?: Record<string, unknown>;
  /** JavaScript run inside `activate(ctx)`; `ExtensionPoints` is in scope. */
  activate?: string;
  /** JavaScript run inside `deactivate(ctx)`. */
  deactivate?: string;
  /** Extra manifest fields, or replacements. */
  manifest?: Record<string, unknown>;
}

/** Writes a plain-JavaScript plugin package under `parent/<id>` (or rewrites it, as an edit on disk would). */
export function writePlugin(parent: string, plugin: FixturePlugin): string {
  const dir = join(parent, plugin.id);
  mkdirSync(dir, { recursive: true });
  const version = plugin.version ?? '1.0.0';
  const pkg = {
    name: `fixture-${plugin.id}`,
    version,
    type: 'module',
    nucleus: {
      id: plugin.id,
      version,
      kernelApi: plugin.kernelApi ?? '^1.0.0',
      entry: './index.js',
      ...(plugin.requires ? { requires: plugin.requires } : {}),
      ...(plugin.configSchema ? { configSchema: plugin.configSchema } : {}),
      ...plugin.manifest,
    },
  };
  writeFileSync(join(dir, 'package.json'), JSON.stringify(pkg, null, 2));
  writeFileSync(
    join(dir, 'index.js'),
    `import { definePlugin, ExtensionPoints } from '@nucleus/sdk';
import { tag } from './tag.js';
export default definePlugin({
  async activate(ctx) { ${plugin.activate ?? ''} },
  async deactivate(ctx) { ${plugin.deactivate ?? ''} },
});
`,
  );
  // A second file imported by relative path: a reload must load it afresh too.
  writeFileSync(join(dir, 'tag.js'), `export const tag = ${JSON.stringify(`${plugin.id}@${version}`)};\n`);
  return dir;
}

/** A plugin contributing `GET /<id>/version`, answering its version and the tag from its second file; it fails when used after disposal. */
export function routePlugin(id: string, version: string, extra: Partial<FixturePlugin> = {}): FixturePlugin {
  return {
    id,
    version,
    // The handler fails if its instance was disposed under it: reload must drain before disposing.
    activate: `let disposed = false; ctx.onDispose(() => { disposed = true; });
      ctx.contribute(ExtensionPoints.routes, { method: 'GET', path: '/${id}/version', access: 'public',
      handler: async () => { await new Promise((r) => setTimeout(r, 2));
        if (disposed) throw new Error('used after dispose'); return { version: ctx.version, tag }; } });`,
    ...extra,
  };
}

/**
 * Writes a plugin contributing backend `name`, whose probe finds no device (as a GPU backend's does on a machine
 * without one): asked for, it falls back to CPU with `reason`.
 */
export function writeUnusableBackend(parent: string, name: string, reason = 'no device found'): string {
  return writePlugin(parent, {
    id: `backend-${name}`,
    manifest: { provides: [`backend:${name}`] },
    activate: `ctx.contribute(ExtensionPoints.backend, { name: ${JSON.stringify(name)}, rank: 50, sessionOptions: () => ({ executionProviders: ['cpu'] }),
      probe: async () => ({ usable: false, reason: ${JSON.stringify(reason)}, devices: [], executionProviders: [] }) });`,
  });
}
