import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import type { PluginManifest } from '@nucleus/sdk';
import { isPluginDefinition, KERNEL_API_VERSION } from '@nucleus/sdk';
import semver from 'semver';
import { importFresh } from './module-loader.js';
import { inspectPluginDir } from './plugin-discovery.js';

/** The result of checking a plugin folder without activating it. */
export interface PluginValidation {
  ok: boolean;
  manifest?: PluginManifest;
  problems: string[];
}

/** Checks a plugin folder the way the host will: manifest, kernel range, entry file and its default export. */
export async function validatePluginDir(dir: string): Promise<PluginValidation> {
  const found = inspectPluginDir(resolve(dir), 'config');
  if (!found.manifest) return { ok: false, problems: [found.error ?? 'invalid manifest'] };
  const manifest = found.manifest;
  const problems: string[] = [];
  if (!semver.satisfies(KERNEL_API_VERSION, manifest.kernelApi)) {
    problems.push(`nucleus.kernelApi: ${manifest.kernelApi} does not include this kernel's API ${KERNEL_API_VERSION}`);
  }
  const entry = resolve(found.dir, manifest.entry);
  if (!existsSync(entry)) {
    problems.push(`nucleus.entry: ${manifest.entry} does not exist; build the plugin first (npm run build)`);
  } else {
    try {
      const mod = await importFresh(entry, found.dir);
      if (!isPluginDefinition(mod.default))
        problems.push(`nucleus.entry: ${manifest.entry} must default-export definePlugin({ activate(ctx) { … } })`);
    } catch (err) {
      problems.push(`nucleus.entry: importing ${manifest.entry} failed: ${(err as Error).message}`);
    }
  }
  return { ok: problems.length === 0, manifest, problems };
}
