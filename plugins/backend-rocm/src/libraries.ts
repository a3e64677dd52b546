import { join } from 'node:path';
import { exists, list, readText } from './host.js';

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
export async function presentFiles(dir: string, names: readonly string[]): Promise<{ present: string[]; missing: string[] }> {
  const present: string[] = [];
  const missing: string[] = [];
  for (const name of names) ((await exists('/', join(dir, name))) ? present : missing).push(name);
  return { present, missing };
}
