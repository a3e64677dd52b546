import { strict as assert } from 'node:assert';
import { spawn } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CLI, REPO_ROOT, tempDir } from '../helpers/paths.js';

// Runs `nucleus serve` until it exits or prints its URL; the child is always ended.
function serve(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number | null; stderr: string; url?: string; stop(): void }> {
  const child = spawn(process.execPath, [CLI, 'serve', '--port', '0', '--host', '127.0.0.1', ...args], {
    cwd: REPO_ROOT,
    env: { ...process.env, NUCLEUS_LOGGING_LEVEL: 'silent', NUCLEUS_PLUGINS_WATCH: 'false', ...env },
  });
  let stdout = '';
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => (child.kill('SIGKILL'), reject(new Error(`serve neither exited nor listened in 60 s; stderr: ${stderr}`))),
      60_000,
    );
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
      const url = /nucleus listening on (http:\/\/[^\s"]+)/.exec(stdout)?.[1];
      if (url) {
        clearTimeout(timer);
        resolve({ code: null, stderr, url, stop: () => child.kill('SIGKILL') });
      }
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stderr, stop: () => undefined });
    });
  });
}

describe('fault injection: a configured model fails to load at start', () => {
  let root: string | undefined;
  afterEach(() => {
    if (root) rmSync(root, { recursive: true, force: true });
  });

  it('nucleus serve exits 1 naming the model and the reason', async () => {
    root = tempDir('load-at-start');
    const bad = join(root, 'bad.onnx');
    writeFileSync(
      bad,
      Uint8Array.from({ length: 512 }, (_, i) => (i * 37) & 0xff),
    );
    const run = await serve(['--model', `bad=${bad}`]);
    run.stop();
    assert.equal(run.code, 1, run.stderr);
    assert.match(run.stderr, /model 'bad' failed to load: .+/);
    assert.match(run.stderr, /optional/);
  });

  it('with startup.requireModels false it serves, /ready degraded naming the model', async () => {
    root = tempDir('load-at-start');
    const bad = join(root, 'bad.onnx');
    writeFileSync(
      bad,
      Uint8Array.from({ length: 512 }, (_, i) => (i * 37) & 0xff),
    );
    const run = await serve(['--model', `bad=${bad}`], { NUCLEUS_STARTUP_REQUIRE_MODELS: 'false' });
    try {
      assert.ok(run.url, run.stderr);
      const res = await fetch(new URL('/ready', run.url), { signal: AbortSignal.timeout(10_000) });
      assert.equal(res.status, 503);
      assert.match(await res.text(), /bad/);
    } finally {
      run.stop();
    }
  });
});
