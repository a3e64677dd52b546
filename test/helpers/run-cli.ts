import { spawn } from 'node:child_process';
import { CLI, REPO_ROOT } from './paths.js';

/** How a `nucleus` command ended: its exit code (null when killed) and what it wrote. */
export interface CliRun {
  code: number | null;
  out: string;
  err: string;
}

/**
 * Runs the `nucleus` CLI to its end, asynchronously (so a server in this process can answer it), with only the
 * variables given plus PATH, so the caller's NUCLEUS_* and HF_* cannot leak in; killed after `timeoutMs`.
 */
export function runCli(args: string[], env: Record<string, string> = {}, timeoutMs = 60_000): Promise<CliRun> {
  const child = spawn(process.execPath, [CLI, ...args], {
    cwd: REPO_ROOT,
    env: { PATH: process.env.PATH ?? '', ...env },
  });
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  return new Promise((resolve) =>
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, out, err });
    }),
  );
}
