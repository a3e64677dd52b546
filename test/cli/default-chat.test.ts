import { strict as assert } from 'node:assert';
import { spawn, type ChildProcess } from 'node:child_process';
import { CLI, REPO_ROOT } from '../helpers/paths.js';
import { followServer, stopServer } from '../helpers/server-child.js';

// llama2.c's run.c, greedy, continues "Once upon a time" with this (stories260K's published reference output).
const RUN_C_CONTINUATION =
  ', there was a little girl named Lily. She loved to play outside in the park. One day, she saw a big, red ' +
  'ball. She wanted to play with it, but it was too high.';

function serveDefault(): ChildProcess {
  return spawn(process.execPath, [CLI, 'serve', '--host', '127.0.0.1', '--port', '0', '--no-watch'], {
    cwd: REPO_ROOT,
    env: { PATH: process.env.PATH ?? '' },
  });
}

describe('the default server writes real text out of the box', function () {
  this.timeout(120_000);

  it('answers the first chat request with the story stories260K tells, word for word as llama2.c does', async () => {
    const child = serveDefault();
    try {
      const url = await followServer(child).url;
      const models = (await (await fetch(`${url}/v1/models`)).json()) as { data: { id: string }[] };
      assert.ok(
        models.data.some((m) => m.id === 'stories260K'),
        JSON.stringify(models),
      );
      const res = await fetch(`${url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          model: 'stories260K',
          messages: [{ role: 'user', content: 'Once upon a time' }],
          temperature: 0,
          max_tokens: 27,
        }),
      });
      assert.equal(res.status, 200);
      const body = (await res.json()) as { choices: { message: { content: string }; finish_reason: string }[] };
      const text = body.choices[0]!.message.content;
      assert.equal(text, ', there was a little girl named Lily. She loved to play outside in the park.');
      assert.ok(RUN_C_CONTINUATION.startsWith(text));
      assert.equal(body.choices[0]!.finish_reason, 'length');
      assert.equal(await stopServer(child), 0);
    } finally {
      child.kill('SIGKILL');
    }
  });
});
