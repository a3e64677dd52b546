import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const CLI = fileURLToPath(new URL('../../core/dist/cli/main.js', import.meta.url));

/** A `nucleus serve` in a process of its own, so the load generator never shares its event loop. */
export interface ServerProcess {
  url: string;
  stop(): Promise<void>;
}

/** Starts `nucleus serve` on a free loopback port with `args` and waits for its listening line. */
export function startServerProcess(args: string[] = [], env: Record<string, string> = {}): Promise<ServerProcess> {
  const child = spawn(process.execPath, [CLI, 'serve', '--host', '127.0.0.1', '--port', '0', '--no-watch', ...args], {
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
        stop: async () => {
          child.kill('SIGTERM');
          await exited;
        },
      });
    });
  });
}
