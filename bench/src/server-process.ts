import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const CLI = fileURLToPath(new URL('../../core/dist/cli/main.js', import.meta.url));

/** A `nucleus serve` in a process of its own, so the load generator never shares its event loop. */
export interface ServerProcess {
  url: string;
  /** The server's process id, for reading its memory and CPU time. */
  pid: number;
  stop(): Promise<void>;
}

/** Where `startServerProcess` finds the CLI, and the flags Node runs it with. */
export interface ServerProcessOptions {
  /** The `nucleus` CLI's main.js: this checkout's unless another build is measured (a base commit's). */
  cli?: string;
  nodeArgs?: string[];
}

/** Starts `nucleus serve` on a free loopback port with `args` and waits for its listening line. */
export function startServerProcess(
  args: string[] = [],
  env: Record<string, string> = {},
  { cli = CLI, nodeArgs = [] }: ServerProcessOptions = {},
): Promise<ServerProcess> {
  const command = [...nodeArgs, cli, 'serve', '--host', '127.0.0.1', '--port', '0', '--no-watch', ...args];
  const child = spawn(process.execPath, command, {
    env: { PATH: process.env.PATH ?? '', NUCLEUS_LOGGING_LEVEL: 'warn', ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`nucleus serve did not start in 60 s:\n${out}`)), 60_000);
    child.once('exit', (code) => reject(new Error(`nucleus serve exited with ${code}:\n${out}`)));
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /nucleus listening on (http:\/\/[^\s"]+)/.exec(out);
      if (!m) return;
      clearTimeout(timer);
      resolve({
        url: m[1]!,
        pid: child.pid!,
        stop: async () => {
          child.kill('SIGTERM');
          await exited;
        },
      });
    });
  });
}
