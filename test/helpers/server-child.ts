import type { ChildProcess } from 'node:child_process';

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
