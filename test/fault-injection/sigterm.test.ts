import { strict as assert } from 'node:assert';
import { spawn } from 'node:child_process';
import { CLI, REPO_ROOT } from '../helpers/paths.js';
import { followServer } from '../helpers/server-child.js';

/** Reads a streamed completion to its end; resolves with the status and the text, after the first token has come. */
async function streamCompletion(
  url: string,
  onFirst: () => void,
): Promise<{ status: number; text: string; done: boolean }> {
  const res = await fetch(`${url}/v1/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      model: 'tiny-llama',
      prompt: 'Once upon a time',
      max_tokens: 48,
      ignore_eos: true,
      stream: true,
    }),
    signal: AbortSignal.timeout(60_000),
  });
  let text = '';
  let first = true;
  const decoder = new TextDecoder();
  for await (const chunk of res.body!) {
    text += decoder.decode(chunk as Uint8Array, { stream: true });
    if (first && text.includes('"text"')) {
      first = false;
      onFirst();
    }
  }
  return { status: res.status, text, done: text.includes('data: [DONE]') };
}

describe('SIGTERM while generations run', () => {
  it('lets all 4 running generations finish with 200, then exits 0', async function () {
    this.timeout(120_000);
    const child = spawn(process.execPath, [CLI, 'serve', '--port', '0', '--host', '127.0.0.1'], {
      cwd: REPO_ROOT,
      env: {
        ...process.env,
        NUCLEUS_LOGGING_LEVEL: 'warn',
        NUCLEUS_PLUGINS_WATCH: 'false',
        NUCLEUS_SCHEDULER_BATCH_WINDOW_MS: '5',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const followed = followServer(child);
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    try {
      const url = await followed.url;
      let started = 0;
      let allStarted!: () => void;
      const running = new Promise<void>((resolve) => (allStarted = resolve));
      const requests = Array.from({ length: 4 }, () => streamCompletion(url, () => ++started === 4 && allStarted()));
      await running;
      child.kill('SIGTERM');
      const results = await Promise.all(requests);
      for (const r of results) {
        assert.equal(r.status, 200);
        assert.ok(r.done, `a stream ended without [DONE]:\n${r.text.slice(-300)}`);
        assert.doesNotMatch(r.text, /"error"/);
      }
      assert.equal(await exited, 0, followed.output());
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  });
});
