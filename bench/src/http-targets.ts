import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startServerProcess } from './server-process.js';

const PEERS = fileURLToPath(new URL('./http-peers.js', import.meta.url));

/** A server under measurement, in a process of its own. */
export interface HttpTarget {
  label: string;
  url: string;
  pid: number;
  stop(): Promise<void>;
}

/** A bare `node:http` server or a bare Koa app answering the same JSON as Nucleus (see http-peers.ts). */
export function startPeer(kind: 'node' | 'koa'): Promise<HttpTarget> {
  const child = spawn(process.execPath, [PEERS, kind], { stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return new Promise((resolve, reject) => {
    let out = '';
    child.once('exit', (code) => reject(new Error(`the ${kind} peer exited with ${code}: ${out}`)));
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /listening on (\S+)/.exec(out);
      if (!m) return;
      resolve({
        label: kind === 'node' ? 'bare node:http' : 'bare Koa',
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

/** `nucleus serve` with its built-in models, from this checkout or from a built checkout at `checkout`; resolves once ready. */
export async function startNucleus(label: string, checkout?: string, nodeArgs: string[] = []): Promise<HttpTarget> {
  const cli = checkout ? join(checkout, 'core/dist/cli/main.js') : undefined;
  const server = await startServerProcess([], {}, { cli, nodeArgs });
  const deadline = Date.now() + 120_000;
  for (;;) {
    const res = await fetch(`${server.url}/ready`).catch(() => undefined);
    await res?.arrayBuffer();
    if (res?.status === 200) break;
    if (Date.now() > deadline) {
      await server.stop();
      throw new Error(`${label}: /ready did not answer 200 within 120 s`);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  return { label, ...server };
}

/** Resident memory of a process in MiB (Linux), or undefined where /proc is not there. */
export function rssMiB(pid: number): number | undefined {
  try {
    const kb = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
    return kb === undefined ? undefined : Number(kb) / 1024;
  } catch {
    return undefined;
  }
}

/** User plus system CPU seconds a process has used (Linux), or undefined where /proc is not there. */
export function cpuSeconds(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name, which is in parentheses and may hold spaces: utime and stime are the 12th and 13th.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // Clock ticks are 100 per second on every Linux Node supports.
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return undefined;
  }
}
