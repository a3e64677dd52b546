import { execFile } from 'node:child_process';
import { access, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';

/** What running a tool gave: its output, or why there is none. */
export type CommandResult =
  | { ok: true; stdout: string }
  | { ok: false; missing: true }
  | { ok: false; missing: false; exitCode?: number; output: string; error: string };

/** Runs a tool by name with arguments; resolves, never rejects. Tests pass one that replays recorded output. */
export type CommandRunner = (file: string, args: readonly string[]) => Promise<CommandResult>;

/** A runner over `child_process.execFile`; a tool that hangs (a GPU tool on a wedged driver can) is killed after `timeoutMs`. */
export function execFileRunner(timeoutMs = 5000): CommandRunner {
  return (file, args) =>
    new Promise((resolve) => {
      execFile(file, [...args], { timeout: timeoutMs, encoding: 'utf8', maxBuffer: 4 << 20 }, (err, stdout, stderr) => {
        if (err === null) return resolve({ ok: true, stdout });
        const e = err as NodeJS.ErrnoException & { killed?: boolean; code?: string | number };
        if (e.code === 'ENOENT') return resolve({ ok: false, missing: true });
        const output = `${stdout}${stderr}`.trim();
        const error = e.killed
          ? `timed out after ${timeoutMs} ms`
          : typeof e.code === 'number'
            ? `exited with code ${e.code}`
            : e.message;
        resolve({ ok: false, missing: false, ...(typeof e.code === 'number' && { exitCode: e.code }), output, error });
      });
    });
}

/** The first line of a failed tool's output, or its error, for a reason string. */
export function describeFailure(result: Extract<CommandResult, { missing: false }>): string {
  const line = result.output
    .split('\n')
    .map((l) => l.trim())
    .find((l) => l !== '');
  return line === undefined ? result.error : `${line} (${result.error})`;
}

/** A file's text under `root`, or undefined when it cannot be read. */
export async function readText(root: string, path: string): Promise<string | undefined> {
  try {
    return await readFile(join(root, path), 'utf8');
  } catch {
    return undefined;
  }
}

/** Whether a path exists under `root`. */
export async function exists(root: string, path: string): Promise<boolean> {
  try {
    await access(join(root, path));
    return true;
  } catch {
    return false;
  }
}

/** Entry names of a folder under `root`, sorted; empty when it cannot be read. */
export async function list(root: string, path: string): Promise<string[]> {
  try {
    return (await readdir(join(root, path))).sort();
  } catch {
    return [];
  }
}
