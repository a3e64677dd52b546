import { strict as assert } from 'node:assert';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { Ollama } from 'ollama';
import { startTestKernel, type TestKernel } from '@nucleus/sdk/testing';
import { HubServer, hubFile } from '../helpers/hub-server.js';
import { REPO_ROOT, tempDir } from '../helpers/paths.js';
import { STORIES_DIR } from '../llm-formats/llm-module.js';

// The Ollama API through the official `ollama` client, unmodified, against a server on loopback: the built-in models
// (stories260K, tiny-llama, bert-tiny), and a Hub-shaped server on 127.0.0.1 for pulls.

const PLUGINS = ['api-ollama', 'source-hub'].map((p) => join(REPO_ROOT, 'plugins', p));
const MODEL = 'stories260K';
const USER = 'nk-ollama-user-0123456789abcdef';
const ADMIN = 'nk-ollama-admin-0123456789abcdef';
const bearer = (key: string) => ({ authorization: `Bearer ${key}` });

async function until(check: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('api-ollama: the Ollama API through the official ollama client', function () {
  this.timeout(120_000);
  let kit: TestKernel;
  let ollama: Ollama;
  let admin: Ollama;
  let hub: HubServer;
  let cache: string;

  before(async () => {
    hub = new HubServer([
      { name: 'org/stories', files: [hubFile('stories260K-Q8_0.gguf', join(STORIES_DIR, 'stories260K-q8_0.gguf'))] },
    ]);
    const endpoint = await hub.start();
    cache = tempDir('ollama-hub-cache');
    kit = await startTestKernel({
      plugins: PLUGINS,
      config: {
        'scheduler.batchWindowMs': 5,
        'auth.keys': [
          { key: USER, role: 'user', name: 'user' },
          { key: ADMIN, role: 'admin', name: 'admin' },
        ],
      },
      env: { HF_ENDPOINT: endpoint, HF_HUB_CACHE: cache },
    });
    ollama = new Ollama({ host: kit.url, headers: bearer(USER) });
    admin = new Ollama({ host: kit.url, headers: bearer(ADMIN) });
  });
  after(async () => {
    await kit?.stop();
    await hub?.stop();
    if (cache) rmSync(cache, { recursive: true, force: true });
  });

  const post = (path: string, body: string | object, key = USER) =>
    fetch(new URL(path, kit.url), {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...bearer(key) },
      body: typeof body === 'string' ? body : JSON.stringify(body),
    });

  it('generates whole and streamed: the same seeded text, with Ollama’s counts and durations', async () => {
    const options = { seed: 11, temperature: 0.8, num_predict: 24 };
    const whole = await ollama.generate({ model: MODEL, prompt: 'Once upon a time', options, stream: false });
    assert.equal(whole.model, MODEL);
    assert.equal(whole.done, true);
    assert.ok(['stop', 'length'].includes(whole.done_reason), whole.done_reason);
    assert.ok((whole.response ?? '').length > 0);
    assert.ok(whole.eval_count > 0 && whole.eval_count <= 24);
    assert.ok(whole.prompt_eval_count > 0);
    for (const d of ['total_duration', 'load_duration', 'prompt_eval_duration', 'eval_duration'] as const)
      assert.ok(Number.isInteger(whole[d]) && whole[d] >= 0, `${d}: ${whole[d]}`);
    assert.ok(whole.total_duration >= whole.eval_duration);
    assert.ok(!Number.isNaN(Date.parse(String(whole.created_at))));

    const parts = await ollama.generate({ model: MODEL, prompt: 'Once upon a time', options, stream: true });
    let text = '';
    let last: Awaited<ReturnType<typeof ollama.generate>> | undefined;
    let lines = 0;
    for await (const part of parts) {
      lines++;
      text += part.response;
      last = part;
    }
    assert.ok(lines > 2, `${lines} lines`);
    assert.equal(text, whole.response);
    assert.equal(last?.done, true);
    assert.equal(last?.eval_count, whole.eval_count);
    assert.equal(last?.done_reason, whole.done_reason);
  });

  it('chats whole and streamed through the model’s chat template, `name:latest` naming the default version', async () => {
    const messages = [{ role: 'user', content: 'Lily and the dog' }];
    const options = { seed: 3, temperature: 0.7, num_predict: 16 };
    const whole = await ollama.chat({ model: `${MODEL}:latest`, messages, options, stream: false });
    assert.equal(whole.message.role, 'assistant');
    assert.ok(whole.message.content.length > 0);
    assert.equal(whole.done, true);
    let text = '';
    for await (const part of await ollama.chat({ model: MODEL, messages, options, stream: true })) {
      assert.equal(part.message.role, 'assistant');
      text += part.message.content;
    }
    assert.equal(text, whole.message.content);
  });

  it('cancels the generation when the client aborts a stream', async () => {
    const stream = await ollama.generate({
      model: MODEL,
      prompt: 'Once upon a time',
      options: { num_predict: 200, temperature: 1, seed: 1 },
      stream: true,
    });
    const running = () => kit.kernel.generation.get(MODEL).running;
    await assert.rejects(
      (async () => {
        for await (const _part of stream) stream.abort();
      })(),
      (err: Error) => err.name === 'AbortError',
    );
    await until(() => running() === 0, 'no running sequence after the abort');
  });

  it('embeds with /api/embed (normalised, several inputs) and /api/embeddings', async () => {
    const out = await ollama.embed({ model: 'bert-tiny', input: ['a cat', 'a dog'] });
    assert.equal(out.embeddings.length, 2);
    for (const v of out.embeddings) {
      assert.ok(v.length > 0);
      assert.ok(Math.abs(Math.hypot(...v) - 1) < 1e-4);
    }
    assert.ok(out.prompt_eval_count > 0);
    const one = await ollama.embeddings({ model: 'bert-tiny', prompt: 'a cat' });
    assert.equal(one.embedding.length, out.embeddings[0]!.length);
  });

  it('lists models (tags, ps), shows one and reports a version', async () => {
    const tags = await ollama.list();
    const names = tags.models.map((m) => m.name).sort();
    for (const name of ['bert-tiny:latest', `${MODEL}:latest`, 'tiny-llama:latest'])
      assert.ok(names.includes(name), names.join());
    const stories = tags.models.find((m) => m.name === `${MODEL}:latest`)!;
    assert.match(stories.digest, /^[0-9a-f]{64}$/);
    const ps = await ollama.ps();
    assert.ok(
      ps.models.some((m) => m.name === `${MODEL}:latest`),
      'the model used above is loaded',
    );
    const show = await ollama.show({ model: MODEL });
    assert.deepEqual(show.capabilities, ['completion']);
    assert.equal((show.model_info as unknown as Record<string, number>)['nucleus.context_length'] > 0, true);
    assert.deepEqual((await ollama.show({ model: 'bert-tiny' })).capabilities, ['embedding']);
    assert.match((await ollama.version()).version, /^\d+\.\d+\.\d+$/);
  });

  it('pulls a Hub model (an admin action) with Ollama’s progress lines, then generates with it', async () => {
    const name = 'hf.co/org/stories:Q8_0';
    await assert.rejects(ollama.pull({ model: name, stream: false }), (err: Error & { status_code?: number }) => {
      assert.equal(err.status_code, 403);
      return true;
    });
    const statuses: string[] = [];
    let completed = 0;
    let total = 0;
    for await (const p of await admin.pull({ model: name, stream: true })) {
      statuses.push(p.status);
      if (p.total) {
        total = p.total;
        completed = p.completed;
        assert.match(p.digest, /^sha256:[0-9a-f]{64}$/);
      }
    }
    assert.equal(statuses[0], 'pulling manifest');
    assert.deepEqual(statuses.slice(-3), ['verifying sha256 digest', 'writing manifest', 'success']);
    assert.ok(total > 0 && completed === total, `${completed}/${total}`);
    const pulled = (await ollama.list()).models.find((m) => m.name === name);
    assert.equal(pulled?.details.format, 'gguf');
    const out = await ollama.generate({ model: name, prompt: 'Once', options: { num_predict: 8 }, stream: false });
    assert.ok(out.eval_count > 0);
    // Pulled again: served already, nothing fetched.
    const downloads = [...hub.downloads.values()].reduce((a, b) => a + b, 0);
    assert.equal((await admin.pull({ model: name, stream: false })).status, 'success');
    assert.equal(
      [...hub.downloads.values()].reduce((a, b) => a + b, 0),
      downloads,
    );
  });

  it('answers errors as Ollama does: {"error": "..."} with the right status', async () => {
    await assert.rejects(
      ollama.generate({ model: 'no-such-model', prompt: 'hi', stream: false }),
      (err: Error & { status_code?: number }) => {
        assert.equal(err.status_code, 404);
        assert.match(err.message, /model "no-such-model" not found/);
        return true;
      },
    );
    const cases: [string, string | object, number, RegExp][] = [
      ['/api/generate', '{"model": "stories260K", "prompt":', 400, /not valid JSON/],
      ['/api/generate', { model: MODEL, prompt: 42 }, 400, /prompt/],
      ['/api/chat', { model: MODEL, messages: 'hello' }, 400, /messages/],
      ['/api/generate', { model: MODEL, prompt: 'x', options: { temperature: 'hot' } }, 400, /options\.temperature/],
      ['/api/generate', { prompt: 'x' }, 400, /model is required/],
      ['/api/generate', { model: MODEL, prompt: 'x', format: 'yaml' }, 400, /invalid format "yaml"/],
      ['/api/nothing-here', {}, 404, /no route for POST \/api\/nothing-here/],
      ['/api/chat', { model: `${MODEL}:v9`, messages: [{ role: 'user', content: 'x' }] }, 404, /not found/],
      ['/api/show', { model: 'nope' }, 404, /not found/],
      ['/api/embed', { model: 'bert-tiny', input: 5 }, 400, /input/],
      ['/api/pull', { model: 'llama3.2' }, 400, /Hugging Face Hub only/],
    ];
    for (const [path, body, status, message] of cases) {
      const res = await post(path, body, path === '/api/pull' ? ADMIN : USER);
      const json = (await res.json()) as { error: unknown };
      assert.equal(res.status, status, `${path} ${JSON.stringify(body)}: ${JSON.stringify(json)}`);
      assert.equal(typeof json.error, 'string', JSON.stringify(json));
      assert.match(json.error as string, message);
    }
    // Keys are checked before the route runs, and refused in Ollama's shape too: the client shows the message.
    const refused = async (client: Ollama, status: number, message: RegExp) =>
      assert.rejects(client.list(), (err: Error & { status_code?: number }) => {
        assert.equal(err.status_code, status);
        assert.match(err.message, message);
        assert.doesNotMatch(err.message, /\[object Object\]/);
        return true;
      });
    await refused(new Ollama({ host: kit.url }), 401, /needs an API key/);
    await refused(
      new Ollama({ host: kit.url, headers: bearer('nk-wrong-key-0123456789abcdef') }),
      401,
      /API key is not valid/,
    );
    await assert.rejects(ollama.pull({ model: 'hf.co/org/stories:Q8_0' }), (err: Error & { status_code?: number }) => {
      assert.equal(err.status_code, 403);
      assert.match(err.message, /admin/);
      return true;
    });
  });
});
