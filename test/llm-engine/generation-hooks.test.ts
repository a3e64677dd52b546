import { strict as assert } from 'node:assert';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { startTestKernel, type TestKernel } from '@nucleus/sdk/testing';
import { REPO_ROOT, tempDir } from '../helpers/paths.js';
import { writePlugin } from '../helpers/plugin-fixtures.js';

const MODEL = 'tiny-llama';

/** The `data:` payloads of an SSE body, parsed, without the closing `[DONE]`. */
function sseData(text: string): Array<Record<string, unknown>> {
  return text
    .split('\n')
    .filter((l) => l.startsWith('data: ') && l !== 'data: [DONE]')
    .map((l) => JSON.parse(l.slice(6)));
}

describe('inference hooks and model routers around the generation routes (OpenAI, native, KServe generate)', () => {
  let kit: TestKernel;
  let dir: string;
  before(async () => {
    dir = tempDir('generation-hooks');
    // A router that sends tenant acme's `assistant` to the tiny model, and hooks that cap every request at two
    // greedy tokens (or, for `break-me`, hand back a field the schema refuses) and stamp the answer.
    writePlugin(`${dir}/plugins`, {
      id: 'tenancy',
      manifest: { provides: ['router:tenant-alias', 'hooks:shape'] },
      activate: `
        ctx.contribute(ExtensionPoints.router, { name: 'tenant-alias',
          route: (r) => r.model === 'assistant' && r.headers['x-tenant'] === 'acme' ? { model: '${MODEL}' } : undefined });
        ctx.contribute(ExtensionPoints.hooks, {
          preInference: (input) => input.model === 'break-me'
            ? { model: '${MODEL}', body: { ...input.body, max_tokens: 'lots' } }
            : { ...input, body: { ...input.body, max_tokens: 2, temperature: 0 } },
          postInference: (output) => ({ ...output, body: { ...output.body, served_by: output.model } }),
        }, { name: 'shape' });`,
    });
    kit = await startTestKernel({
      plugins: [join(REPO_ROOT, 'plugins', 'api-openai'), join(REPO_ROOT, 'plugins', 'api-kserve'), `${dir}/plugins`],
    });
  });
  after(async () => {
    await kit?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const acme = { 'x-tenant': 'acme' };

  it('routes and hooks /v1/chat/completions: the router picks the model, the hooks change request and response', async () => {
    const res = await kit.request('/v1/chat/completions', {
      body: { model: 'assistant', messages: [{ role: 'user', content: 'Tell me a story.' }], max_tokens: 50 },
      headers: acme,
    });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    const body = res.body as {
      model: string;
      served_by: string;
      usage: { completion_tokens: number };
      choices: Array<{ finish_reason: string }>;
    };
    assert.deepEqual(
      [body.model, body.served_by, body.usage.completion_tokens, body.choices[0]!.finish_reason],
      [MODEL, MODEL, 2, 'length'],
    );
    // Without the tenant header no router answers, and `assistant` is no model.
    const unrouted = await kit.request('/v1/chat/completions', {
      body: { model: 'assistant', messages: [{ role: 'user', content: 'Hi' }] },
    });
    assert.equal(unrouted.status, 404, JSON.stringify(unrouted.body));
  });

  it('routes and hooks a streamed chat completion on the way in', async () => {
    const res = await fetch(new URL('/v1/chat/completions', kit.url), {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...acme },
      body: JSON.stringify({
        model: 'assistant',
        messages: [{ role: 'user', content: 'Hi' }],
        stream: true,
        stream_options: { include_usage: true },
      }),
    });
    assert.equal(res.status, 200);
    const chunks = sseData(await res.text()) as Array<{ model: string; usage: { completion_tokens: number } | null }>;
    assert.ok(chunks.every((c) => c.model === MODEL));
    assert.equal(chunks.at(-1)!.usage!.completion_tokens, 2);
  });

  it('routes and hooks the native /generate', async () => {
    const res = await kit.request('/generate', {
      body: { model: 'assistant', prompt: 'Once upon a time', max_tokens: 40 },
      headers: acme,
    });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    const body = res.body as { model: string; served_by: string; choices: Array<{ token_ids: number[] }> };
    assert.deepEqual([body.model, body.served_by, body.choices[0]!.token_ids.length], [MODEL, MODEL, 2]);
  });

  it('routes and hooks the KServe generate extension', async () => {
    const res = await kit.request('/v2/models/assistant/generate', {
      body: { text_input: 'Once upon a time' },
      headers: acme,
    });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.deepEqual(
      [(res.body as { model_name: string }).model_name, (res.body as { served_by: string }).served_by],
      [MODEL, MODEL],
    );
  });

  it('checks what a hook hands back against the schema: a bad field is a 400 naming it', async () => {
    const res = await kit.request('/v1/chat/completions', {
      body: { model: 'break-me', messages: [{ role: 'user', content: 'Hi' }] },
    });
    assert.equal(res.status, 400, JSON.stringify(res.body));
    assert.equal((res.body as { error: { param: string } }).error.param, 'max_tokens');
  });
});
