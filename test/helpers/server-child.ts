import { spawn, type ChildProcess } from 'node:child_process';
import { CLI, REPO_ROOT } from './paths.js';

/** A `nucleus serve` child process's output so far, and the URL it listens on once it says so. */
export interface ServerChild {
  url: Promise<string>;
  /** Everything it wrote to stdout and stderr so far (for assertion messages). */
  output(): string;
}

/**
 * Follows a `nucleus serve` child: `url` resolves at its `nucleus listening on` line, and rejects when it exits
 * first or says nothing of the kind within `timeoutMs`.
 */
export function followServer(child: ChildProcess, timeoutMs = 60_000): ServerChild {
  let output = '';
  const url = new Promise<string>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`no listening line in ${timeoutMs / 1000} s:\n${output}`)),
      timeoutMs,
    );
    const onData = (d: Buffer) => {
      output += d.toString();
      const m = /nucleus listening on (http:\/\/[^\s"]+)/.exec(output);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]!);
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`exited ${code} before listening:\n${output}`));
    });
  });
  return { url, output: () => output };
}

/** Sends SIGTERM and waits for the exit code (null when a signal ended it); SIGKILL after 30 s. */
export async function stopServer(child: ChildProcess): Promise<number | null> {
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
  const code = await exited;
  clearTimeout(timer);
  return code;
}

/** `nucleus serve` on one model (`NAME=SOURCE`) and a free loopback port, without the plugin watcher. */
export function spawnServe(model: string, env: Record<string, string> = {}): ChildProcess {
  return spawn(process.execPath, [CLI, 'serve', '--host', '127.0.0.1', '--port', '0', '--no-watch', '--model', model], {
    cwd: REPO_ROOT,
    env: { PATH: process.env.PATH ?? '', ...env },
  });
}

/** `nucleus serve` on a model it must refuse at start: its exit code and what it wrote to stderr. */
export function serveFailure(
  model: string,
  env: Record<string, string> = {},
): Promise<{ code: number | null; err: string }> {
  return new Promise((resolve, reject) => {
    const child = spawnServe(model, env);
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    let err = '';
    child.stderr!.setEncoding('utf8').on('data', (d: string) => {
      err += d;
    });
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, err });
    });
  });
}

/** One chat completion with one user message, greedy: the status and the parsed body. */
export async function chatOnce(
  url: string,
  model: string,
  content: string,
  maxTokens: number,
): Promise<{
  status: number;
  body: {
    choices?: { message: { role: string; content: string } }[];
    usage?: { prompt_tokens: number; completion_tokens: number };
  };
}> {
  const res = await fetch(`${url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model, messages: [{ role: 'user', content }], max_tokens: maxTokens, temperature: 0 }),
  });
  return { status: res.status, body: (await res.json()) as never };
}
