import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** One wrk run: requests per second and its latency percentiles. */
export interface WrkResult {
  requestsPerSecond: number;
  /** Requests completed in the run. */
  requests: number;
  p50Ms: number;
  p99Ms: number;
  /** Non-2xx/3xx answers plus socket errors. */
  errors: number;
}

/** What wrk sends: a GET, or a POST with a JSON body. */
export interface WrkRequest {
  url: string;
  /** A POST body; where it holds {@link COUNTER}, each request puts its own number there, so no two are the same. */
  jsonBody?: string;
}

/** The place in a body where each request puts its number (a JSON number: 1, 2, 3…). */
export const COUNTER = '__N__';

function luaString(text: string): string {
  return `[==[${text}]==]`;
}

/** The Lua script that makes wrk POST `body`, numbered per request where it holds {@link COUNTER}. */
function postScript(body: string): string {
  const lines = ['wrk.method = "POST"', 'wrk.headers["Content-Type"] = "application/json"'];
  const at = body.indexOf(COUNTER);
  if (at < 0) return [...lines, `wrk.body = ${luaString(body)}`, ''].join('\n');
  const head = luaString(body.slice(0, at));
  const tail = luaString(body.slice(at + COUNTER.length));
  return [
    ...lines,
    'local n = 0',
    'request = function()',
    '  n = n + 1',
    `  return wrk.format(nil, nil, nil, ${head} .. n .. ${tail})`,
    'end',
    '',
  ].join('\n');
}

/**
 * Finds wrk, installing the Debian package when it is missing and apt-get can run; otherwise returns why it cannot,
 * for the suite to print and skip.
 */
export function ensureWrk(): string | undefined {
  const found = () => spawnSync('wrk', ['--version']).error === undefined;
  if (found()) return undefined;
  const root = process.getuid?.() === 0;
  const apt = root ? ['apt-get'] : ['sudo', '-n', 'apt-get'];
  if (spawnSync(apt[0]!, [...apt.slice(1), '--version']).status !== 0)
    return 'wrk is not installed and apt-get is not available to install it (Debian/Ubuntu: apt-get install wrk)';
  try {
    execFileSync(apt[0]!, [...apt.slice(1), 'update', '-qq'], { stdio: 'ignore' });
    execFileSync(apt[0]!, [...apt.slice(1), 'install', '-y', '-qq', 'wrk'], { stdio: 'ignore' });
  } catch (err) {
    return `wrk is not installed and installing it with apt-get failed: ${(err as Error).message}`;
  }
  return found() ? undefined : 'wrk is still not on PATH after apt-get install wrk';
}

const UNIT_MS: Record<string, number> = { us: 1e-3, ms: 1, s: 1000, m: 60_000 };

function durationMs(text: string | undefined): number {
  const m = /^([\d.]+)(us|ms|s|m)$/.exec(text ?? '');
  return m ? Number(m[1]) * UNIT_MS[m[2]!]! : NaN;
}

/** Reads wrk's `--latency` report. */
export function parseWrk(out: string): WrkResult {
  const rps = /Requests\/sec:\s+([\d.]+)/.exec(out);
  if (!rps) throw new Error(`wrk printed no Requests/sec:\n${out}`);
  const non2xx = Number(/Non-2xx or 3xx responses:\s+(\d+)/.exec(out)?.[1] ?? 0);
  const socket = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const socketErrors = socket ? socket.slice(1).reduce((sum, n) => sum + Number(n), 0) : 0;
  return {
    requestsPerSecond: Number(rps[1]),
    requests: Number(/(\d+) requests in/.exec(out)?.[1] ?? NaN),
    p50Ms: durationMs(/^\s+50%\s+(\S+)/m.exec(out)?.[1]),
    p99Ms: durationMs(/^\s+99%\s+(\S+)/m.exec(out)?.[1]),
    errors: non2xx + socketErrors,
  };
}

/** Runs `wrk -t<threads> -c<connections> -d<seconds>s --latency` against a request and returns its report. */
export async function runWrk(
  request: WrkRequest,
  { seconds, connections, threads = 1 }: { seconds: number; connections: number; threads?: number },
): Promise<WrkResult> {
  const args = [`-t${threads}`, `-c${connections}`, `-d${seconds}s`, '--latency'];
  let dir: string | undefined;
  if (request.jsonBody !== undefined) {
    dir = mkdtempSync(join(tmpdir(), 'nucleus-wrk-'));
    const script = join(dir, 'post.lua');
    writeFileSync(script, postScript(request.jsonBody));
    args.push('-s', script);
  }
  args.push(request.url);
  try {
    const out = await new Promise<string>((resolve, reject) => {
      const child = spawn('wrk', args, { stdio: ['ignore', 'pipe', 'pipe'] });
      let text = '';
      child.stdout.on('data', (d: Buffer) => (text += d.toString()));
      child.stderr.on('data', (d: Buffer) => (text += d.toString()));
      child.once('error', reject);
      child.once('exit', (code) =>
        code === 0 ? resolve(text) : reject(new Error(`wrk exited with ${code}:\n${text}`)),
      );
    });
    return parseWrk(out);
  } finally {
    if (dir) rmSync(dir, { recursive: true, force: true });
  }
}
