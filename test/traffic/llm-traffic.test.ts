import { strict as assert } from 'node:assert';
import { join } from 'node:path';
import { startTestKernel, type TestKernel } from '@nucleus/sdk/testing';
import { REPO_ROOT } from '../helpers/paths.js';

const ADMIN_KEY = 'traffic-admin-key-0123456789';
const STORIES = 'stories260K';
const TINY = 'tiny-llama';

describe('traffic policies over the generation APIs (OpenAI, native /generate and /chat, KServe generate)', () => {
  let kit: TestKernel;
  before(async () => {
    // The two built-in LLMs serve as two variants of `writer`, a name of their own.
    kit = await startTestKernel({
      plugins: [
        join(REPO_ROOT, 'plugins/api-openai'),
        join(REPO_ROOT, 'plugins/api-kserve'),
        join(REPO_ROOT, 'plugins/traffic-policy'),
      ],
      env: { NUCLEUS_ADMIN_KEY: ADMIN_KEY },
    });
  });
  after(() => kit?.stop());

  const send = (path: string, init: { method?: string; body?: unknown; headers?: Record<string, string> } = {}) =>
    kit.request(path, { ...init, headers: { authorization: `Bearer ${ADMIN_KEY}`, ...init.headers } });

  it('splits OpenAI chat requests sticky by the `user` field, and native requests by the header, naming the model that answered', async () => {
    const set = await send('/admin/traffic/writer', {
      method: 'PUT',
      body: {
        type: 'weights',
        variants: [
          { model: STORIES, weight: 1 },
          { model: TINY, weight: 1 },
        ],
      },
    });
    assert.equal(set.status, 200, JSON.stringify(set.body));
    const seen = new Set<string>();
    for (let i = 0; i < 12; i++) {
      const answers: string[] = [];
      for (const path of ['/v1/chat/completions', '/chat']) {
        const res = await send(path, {
          body: {
            model: 'writer',
            messages: [{ role: 'user', content: 'Once upon a time' }],
            max_tokens: 2,
            temperature: 0,
            ...(path === '/v1/chat/completions' && { user: `writer-${i}` }),
          },
          ...(path === '/chat' && { headers: { 'x-user-id': `writer-${i}` } }),
        });
        assert.equal(res.status, 200, JSON.stringify(res.body));
        const model = res.headers.get('x-model-name')!;
        assert.equal((res.body as { model: string }).model, model);
        answers.push(model);
      }
      assert.equal(answers[0], answers[1], `writer-${i} gets one model over OpenAI and /chat`);
      seen.add(answers[0]!);
    }
    assert.deepEqual([...seen].sort(), [STORIES, TINY]);
    const status = (await send('/admin/traffic')).body as {
      models: { writer: { requests: number; variants: Array<{ model: string; requests: number }> } };
    };
    assert.equal(status.models.writer.requests, 24);
  });

  it('copies /generate requests to a shadow LLM and reports their token agreement, answering from the primary', async () => {
    const set = await send('/admin/traffic/writer', {
      method: 'PUT',
      body: { type: 'shadow', primary: { model: STORIES }, shadow: { model: TINY } },
    });
    assert.equal(set.status, 200, JSON.stringify(set.body));
    const prompt = { text_input: 'Once upon a time', parameters: { max_tokens: 4, temperature: 0 } };
    const direct = await send(`/v2/models/${STORIES}/generate`, { body: prompt });
    for (let i = 0; i < 4; i++) {
      const res = await send('/v2/models/writer/generate', { body: prompt });
      assert.equal(res.status, 200, JSON.stringify(res.body));
      assert.equal(res.headers.get('x-model-name'), STORIES);
      assert.equal(
        (res.body as { text_output: string }).text_output,
        (direct.body as { text_output: string }).text_output,
      );
    }
    let shadow: { copies: number; compared: number; agreement: number | null; agreementKind?: string } | undefined;
    for (let i = 0; i < 200 && (shadow?.copies ?? 0) < 4; i++) {
      await new Promise((r) => setTimeout(r, 50));
      shadow = ((await send('/admin/traffic')).body as { models: { writer: { shadow: NonNullable<typeof shadow> } } })
        .models.writer.shadow;
    }
    assert.equal(shadow?.copies, 4);
    assert.equal(shadow?.compared, 4);
    assert.equal(shadow?.agreementKind, 'tokens');
    assert.ok(shadow!.agreement! >= 0 && shadow!.agreement! <= 1);
  });
});
