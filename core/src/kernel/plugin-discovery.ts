import { existsSync, readdirSync, readFileSync, realpathSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { PluginManifest } from '@nucleus/sdk';
import { ManifestError, validateManifest } from './plugin-manifest.js';

/** Where a plugin was found. */
export type PluginSource = 'folder' | 'package' | 'config';

/** A plugin folder found on disk, with its manifest or the reason it is invalid. */
export interface DiscoveredPlugin {
  /** The manifest's id; for an invalid manifest its id field when readable, else the package name. */
  id: string;
  dir: string;
  source: PluginSource;
  packageName: string;
  manifest?: PluginManifest;
  /** Set when the manifest is missing or invalid. */
  error?: string;
}

/** Where to look for plugins. */
export interface DiscoveryOptions {
  /** Folders of plugin folders (the project's `plugins/`). */
  pluginFolders: string[];
  /** `node_modules` folders to scan for packages with the keyword `nucleus-plugin`. */
  nodeModules: string[];
  /** Extra folders from config: each is a plugin folder or a folder of them. */
  configDirs: string[];
}

const KEYWORD = 'nucleus-plugin';

function readPackage(dir: string): Record<string, unknown> | undefined {
  const file = join(dir, 'package.json');
  if (!existsSync(file)) return undefined;
  return JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
}

function subdirs(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { withFileTypes: true })
    .filter((d) => d.isDirectory() || (d.isSymbolicLink() && statSync(join(dir, d.name)).isDirectory()))
    .map((d) => join(dir, d.name))
    .sort();
}

/** Reads one plugin folder's package.json and validates its manifest. */
export function inspectPluginDir(dir: string, source: PluginSource): DiscoveredPlugin {
  let pkg: Record<string, unknown> | undefined;
  try {
    pkg = readPackage(dir);
  } catch (err) {
    return {
      id: dir,
      dir,
      source,
      packageName: dir,
      error: `cannot read ${join(dir, 'package.json')}: ${(err as Error).message}`,
    };
  }
  if (!pkg) return { id: dir, dir, source, packageName: dir, error: `no package.json in ${dir}` };
  const packageName = typeof pkg.name === 'string' ? pkg.name : dir;
  try {
    const manifest = validateManifest(pkg, join(dir, 'package.json'));
    return { id: manifest.id, dir, source, packageName, manifest };
  } catch (err) {
    const rawId = (pkg.nucleus as { id?: unknown } | undefined)?.id;
    const id = typeof rawId === 'string' ? rawId : packageName;
    return { id, dir, source, packageName, error: err instanceof ManifestError ? err.message : String(err) };
  }
}

function isPluginPackage(dir: string): boolean {
  try {
    const pkg = readPackage(dir);
    return Array.isArray(pkg?.keywords) && (pkg.keywords as unknown[]).includes(KEYWORD);
  } catch {
    return false;
  }
}

/**
 * Finds plugins in the configured folders, the project's plugin folders and installed packages
 * tagged `nucleus-plugin`. A folder seen twice (a workspace symlinked into node_modules) counts once;
 * the first place wins: config folders, then plugin folders, then packages.
 */
export function discoverPlugins(options: DiscoveryOptions): DiscoveredPlugin[] {
  const found: DiscoveredPlugin[] = [];
  const seen = new Set<string>();
  const add = (dir: string, source: PluginSource) => {
    const real = realpathSync(dir);
    if (seen.has(real)) return;
    seen.add(real);
    found.push(inspectPluginDir(real, source));
  };
  for (const dir of options.configDirs) {
    if (!existsSync(dir)) {
      found.push({ id: dir, dir, source: 'config', packageName: dir, error: `plugin folder ${dir} does not exist` });
    } else if (existsSync(join(dir, 'package.json'))) {
      add(dir, 'config');
    } else {
      for (const sub of subdirs(dir)) if (existsSync(join(sub, 'package.json'))) add(sub, 'config');
    }
  }
  for (const folder of options.pluginFolders) {
    for (const sub of subdirs(folder)) if (existsSync(join(sub, 'package.json'))) add(sub, 'folder');
  }
  for (const nm of options.nodeModules) {
    for (const entry of subdirs(nm)) {
      const candidates = entry.split('/').pop()!.startsWith('@') ? subdirs(entry) : [entry];
      for (const dir of candidates) if (isPluginPackage(dir)) add(dir, 'package');
    }
  }
  return found;
}
