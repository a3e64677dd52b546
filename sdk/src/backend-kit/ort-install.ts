import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { exists, list, readText, type CommandRunner } from './host-inspection.js';

/** Where onnxruntime-node keeps its native files for this platform. */
export interface OrtInstall {
  packageDir: string;
  version?: string;
  /** `bin/napi-v<N>/<platform>/<arch>`, the folder holding `onnxruntime_binding.node`; absent when this platform has no binary. */
  binaryDir?: string;
}

/** Finds the native folder of an onnxruntime-node package: the newest `bin/napi-v*` with a binding for this platform. */
export async function locateOrtInstall(packageDir: string, platform: string, arch: string): Promise<OrtInstall> {
  const pkg = await readText('/', join(packageDir, 'package.json'));
  let version: string | undefined;
  try {
    version = pkg === undefined ? undefined : (JSON.parse(pkg) as { version?: string }).version;
  } catch {
    version = undefined;
  }
  const napi = (await list('/', join(packageDir, 'bin')))
    .filter((d) => /^napi-v\d+$/.test(d))
    .sort((a, b) => Number(b.slice(6)) - Number(a.slice(6)));
  for (const dir of napi) {
    const binaryDir = join(packageDir, 'bin', dir, platform, arch);
    if (await exists('/', join(binaryDir, 'onnxruntime_binding.node'))) {
      return { packageDir, ...(version !== undefined && { version }), binaryDir };
    }
  }
  return { packageDir, ...(version !== undefined && { version }) };
}

/** Which of `names` are present in `dir`. */
export async function presentFiles(
  dir: string,
  names: readonly string[],
): Promise<{ present: string[]; missing: string[] }> {
  const present: string[] = [];
  const missing: string[] = [];
  for (const name of names) ((await exists('/', join(dir, name))) ? present : missing).push(name);
  return { present, missing };
}

/** Which of `keys` appear in a native binding: a binding can only read an option object's property if its name is in the binary. */
export async function bindingMentions(bindingPath: string, keys: readonly string[]): Promise<Set<string>> {
  try {
    const text = (await readFile(bindingPath)).toString('latin1');
    return new Set(keys.filter((k) => text.includes(k)));
  } catch {
    return new Set();
  }
}

/** Where the dynamic loader would find some shared libraries. */
export interface LibrarySearch {
  found: Record<string, string>;
  missing: string[];
  /** False when ldconfig could not be asked and only common folders were scanned, so `missing` may be wrong. */
  conclusive: boolean;
}

// Searched when ldconfig is unavailable (minimal containers): where CUDA, cuDNN and TensorRT packages install.
const FALLBACK_DIRS = [
  '/usr/local/cuda/lib64',
  '/usr/lib/x86_64-linux-gnu',
  '/usr/lib/aarch64-linux-gnu',
  '/usr/lib64',
  '/usr/lib',
];

/** Looks for shared libraries the way the loader would: `LD_LIBRARY_PATH`, then the ldconfig cache (or common folders without one). */
export async function findSharedLibraries(
  names: readonly string[],
  options: { root: string; run: CommandRunner; ldLibraryPath?: string },
): Promise<LibrarySearch> {
  const found: Record<string, string> = {};
  const scan = async (dirs: readonly string[]): Promise<void> => {
    for (const name of names) {
      if (found[name] !== undefined) continue;
      for (const dir of dirs) {
        if (await exists(options.root, join(dir, name))) {
          found[name] = join(dir, name);
          break;
        }
      }
    }
  };
  await scan((options.ldLibraryPath ?? '').split(':').filter((d) => d !== ''));
  const ldconfig = await options.run('ldconfig', ['-p']);
  if (ldconfig.ok) {
    for (const line of ldconfig.stdout.split('\n')) {
      const m = line.match(/^\s*(\S+)\s+\(.*\)\s+=>\s+(\S+)/);
      if (m?.[1] !== undefined && m[2] !== undefined && names.includes(m[1])) found[m[1]] ??= m[2];
    }
  } else {
    await scan(FALLBACK_DIRS);
  }
  return { found, missing: names.filter((n) => found[n] === undefined), conclusive: ldconfig.ok };
}

/** The folder of the onnxruntime-node package a module at `from` (its `import.meta.url`) would load, or undefined when none is installed. */
export function resolveOrtPackageDir(from: string): string | undefined {
  try {
    return dirname(createRequire(from).resolve('onnxruntime-node/package.json'));
  } catch {
    return undefined;
  }
}

/** One provider as `listSupportedBackends()` of onnxruntime-node reports it. */
export interface OrtBackendInfo {
  name: string;
  /** False when its libraries are not shipped in the npm package and must be installed separately. */
  bundled: boolean;
}

/** Asks the onnxruntime-node a module at `from` would load which providers its binding was built with; loads the native binding. */
export function listOrtBackends(from: string): readonly OrtBackendInfo[] {
  const ort = createRequire(from)('onnxruntime-node') as { listSupportedBackends(): OrtBackendInfo[] };
  return ort.listSupportedBackends();
}

/** What a backend's detection reads from the machine; each defaults to the real thing and is replaced by fixtures in tests. */
export interface MachineInputs {
  /** Filesystem root that `/proc`, `/sys` and `/dev` are read under; default `/`. */
  root?: string;
  /** Runs vendor tools and ldconfig; default `execFile` with a 5 s timeout. */
  run?: CommandRunner;
  /** The onnxruntime-node package folder, `null` for "not installed"; default: resolved from the plugin. */
  ortPackageDir?: string | null;
  /** `listSupportedBackends()` of that package; default loads it. */
  ortBackends?: () => readonly OrtBackendInfo[];
  platform?: string;
  arch?: string;
  /** Environment read for visible-device and library-path variables; default `process.env`. */
  env?: Readonly<Record<string, string | undefined>>;
}

/** What a GPU backend's probe learns about the onnxruntime-node it would load. */
export interface OrtProbe {
  /** The package folder; undefined when onnxruntime-node is not installed. */
  packageDir?: string;
  install?: OrtInstall;
  /** `onnxruntime-node 1.x.y`, as problems name it. */
  name: string;
  /** The providers its binding was built with; undefined when it could not be loaded. */
  backends?: readonly OrtBackendInfo[];
}

/**
 * Finds and loads the onnxruntime-node a plugin module at `from` would use (or the one `inputs` name), pushing what
 * makes it unusable onto `problems` in the operator's words: not installed, or failing to load.
 */
export async function probeOrt(
  from: string,
  plugin: string,
  inputs: Pick<MachineInputs, 'ortPackageDir' | 'ortBackends'>,
  platform: string,
  arch: string,
  problems: string[],
): Promise<OrtProbe> {
  const packageDir =
    inputs.ortPackageDir === undefined ? resolveOrtPackageDir(from) : (inputs.ortPackageDir ?? undefined);
  if (packageDir === undefined) {
    problems.push(`onnxruntime-node is not installed where the ${plugin} plugin can load it: run npm install`);
    return { name: 'onnxruntime-node' };
  }
  const install = await locateOrtInstall(packageDir, platform, arch);
  const name = `onnxruntime-node${install.version ? ` ${install.version}` : ''}`;
  try {
    const backends = inputs.ortBackends ? inputs.ortBackends() : listOrtBackends(from);
    return { packageDir, install, name, backends };
  } catch (err) {
    problems.push(`${name} could not be loaded: ${err instanceof Error ? err.message : String(err)}`);
    return { packageDir, install, name };
  }
}

/** The install facts a probe reports: package folder, version and native folder where known. */
export function ortInstallDetails(install: OrtInstall): { packageDir: string; version?: string; binaryDir?: string } {
  return {
    packageDir: install.packageDir,
    ...(install.version && { version: install.version }),
    ...(install.binaryDir && { binaryDir: install.binaryDir }),
  };
}
