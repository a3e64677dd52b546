import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { CommandRunner, OrtBackendInfo } from '@nucleus/plugin-backend-cuda';
import type * as SelectorModule from '../../core/src/engine/backend-selector.js';
import type * as SessionModule from '../../core/src/engine/backend-session.js';
import { REPO_ROOT } from '../helpers/paths.js';

/** Recorded machines and onnxruntime-node installs (see its README). */
export const FIXTURES = join(REPO_ROOT, 'test/fixtures/backends');

/** A recorded machine: a filesystem root and a runner replaying its tools' output. */
export interface Machine {
  root: string;
  run: CommandRunner;
  /** Every command the probe ran, in order. */
  calls: Array<{ file: string; args: readonly string[] }>;
}

/** Opens `machines/<name>`: tools with a `commands/<tool>.stdout` answer with it, the rest are "not installed". */
export function machine(name: string): Machine {
  const dir = join(FIXTURES, 'machines', name);
  const calls: Machine['calls'] = [];
  const run: CommandRunner = async (file, args) => {
    calls.push({ file, args });
    const stdout = join(dir, 'commands', `${file}.stdout`);
    if (!existsSync(stdout)) return { ok: false, missing: true };
    const output = readFileSync(stdout, 'utf8');
    const exit = join(dir, 'commands', `${file}.exit`);
    if (!existsSync(exit)) return { ok: true, stdout: output };
    const exitCode = Number(readFileSync(exit, 'utf8').trim());
    return { ok: false, missing: false, exitCode, output: output.trim(), error: `exited with code ${exitCode}` };
  };
  return { root: join(dir, 'root'), run, calls };
}

/** Opens `ort/<name>`: an onnxruntime-node package folder and its recorded `listSupportedBackends()`. */
export function ortInstall(name: string): {
  ortPackageDir: string;
  ortBackends: () => OrtBackendInfo[];
  binaryDir: string;
} {
  const dir = join(FIXTURES, 'ort', name);
  const backends = JSON.parse(readFileSync(join(dir, 'supported-backends.json'), 'utf8')) as OrtBackendInfo[];
  const ortPackageDir = join(dir, 'onnxruntime-node');
  return { ortPackageDir, ortBackends: () => backends, binaryDir: join(ortPackageDir, 'bin/napi-v6/linux/x64') };
}

// The core package exports only its root; its compiled engine modules are loaded by path.
const engine = (file: string): string => pathToFileURL(join(REPO_ROOT, 'core/dist/engine', file)).href;
/** `core/src/engine/backend-selector.ts`, compiled. */
export const { BackendSelector, CPU_BACKEND } = (await import(engine('backend-selector.js'))) as typeof SelectorModule;
/** `core/src/engine/backend-session.ts`, compiled. */
export const { createBackendSession } = (await import(engine('backend-session.js'))) as typeof SessionModule;
