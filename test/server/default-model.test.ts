import { strict as assert } from 'node:assert';
import { join } from 'node:path';
import { startTestKernel, type TestKernel } from '@nucleus/sdk/testing';
import { REPO_ROOT } from '../helpers/paths.js';
import { STORIES_DIR } from '../llm-formats/llm-module.js';

// Requests that name no model: `/generate` and `/chat` (api-openai's native routes) and `/infer` (api-kserve's,
// which takes LLM requests too), over real HTTP on stories260K.

const PLUGINS = ['api-openai', 'api-kserve'].map((p) => join(REPO_ROOT, 'plugins', p));
const STORIES = join(STORIES_DIR, 'stories260K.gguf');

describe('default model: native routes without `model`, and /infer for LLMs', function () {
  this.timeout(120_000);
  const kits: TestKernel[] = [];
  const start = async (config: Record<string, unknown>) => {
    const kit = await startTestKernel({ plugins: PLUGINS, builtinModels: false, config });
    kits.push(kit);
    return kit;
  };
  after(async () => {
    for (const kit of kits) await kit.stop();
  });

  describe('one LLM served', () => {
    let kit: TestKernel;
    before(async () => {
      kit = await start({ models: [{ name: 'story', path: STORIES }] });
    });

    it('/generate with only a prompt and options goes to it (seed 004 R1.1)', async () => {
      const res = await kit.request('/generate', {
        method: 'POST',
        body: { prompt: 'Once upon a time', max_tokens: 12, temperature: 0, top_p: 0.9, stop: ['\n\n'] },
      });
      assert.equal(res.status, 200, JSON.stringify(res.body));
      const body = res.body as { request_id: string; model: string; choices: { text: string }[] };
      assert.equal(body.model, 'story');
      assert.ok(body.request_id.length > 0);
      const named = await kit.request('/generate', {
        method: 'POST',
        body: {
          model: 'story',
          prompt: 'Once upon a time',
          max_tokens: 12,
          temperature: 0,
          top_p: 0.9,
          stop: ['\n\n'],
        },
      });
      assert.equal(body.choices[0]!.text, (named.body as typeof body).choices[0]!.text);
      assert.ok(body.choices[0]!.text.length > 0);
    });

    it('/chat without a model goes to it too', async () => {
      const res = await kit.request('/chat', {
        method: 'POST',
        body: { messages: [{ role: 'user', content: 'Lily' }], max_tokens: 6 },
      });
      assert.equal(res.status, 200, JSON.stringify(res.body));
      assert.equal((res.body as { model: string }).model, 'story');
    });

    it('/infer generates for an LLM, with or without its name, and the same greedy text as /generate', async () => {
      const request = { prompt: 'Once upon a time', parameters: { max_tokens: 10, temperature: 0 } };
      const named = await kit.request('/infer', { method: 'POST', body: { model: 'story', ...request } });
      assert.equal(named.status, 200, JSON.stringify(named.body));
      const body = named.body as {
        model: string;
        version: string;
        outputs: { text: string };
        finish_reason: string;
        usage: { prompt_tokens: number; completion_tokens: number; total_tokens: number };
      };
      assert.equal(body.model, 'story');
      assert.equal(body.version, '1');
      assert.equal(body.finish_reason, 'length');
      assert.equal(body.usage.completion_tokens, 10);
      assert.equal(body.usage.total_tokens, body.usage.prompt_tokens + 10);
      const unnamed = await kit.request('/infer', { method: 'POST', body: request });
      assert.equal((unnamed.body as typeof body).outputs.text, body.outputs.text);
      const generated = await kit.request('/generate', {
        method: 'POST',
        body: { prompt: 'Once upon a time', max_tokens: 10, temperature: 0 },
      });
      assert.equal((generated.body as { choices: { text: string }[] }).choices[0]!.text, body.outputs.text);
    });

    it('/batch_infer takes LLM items beside each other, each answered on its own', async () => {
      const res = await kit.request('/batch_infer', {
        method: 'POST',
        body: {
          requests: [
            { prompt: 'Once', max_tokens: 4, temperature: 0 },
            { model: 'story', inputs: { x: [1] } },
            { prompt: 7 },
          ],
        },
      });
      assert.equal(res.status, 200, JSON.stringify(res.body));
      const results = (
        res.body as { results: { status: number; outputs?: { text: string }; error?: { message: string } }[] }
      ).results;
      assert.equal(results[0]!.status, 200);
      assert.ok(typeof results[0]!.outputs?.text === 'string');
      assert.equal(results[1]!.status, 400);
      assert.match(results[1]!.error!.message, /'story' is an LLM; send its input as 'prompt'/);
      assert.equal(results[2]!.status, 400);
      assert.match(results[2]!.error!.message, /prompt must be a string/);
    });
  });

  describe('two LLMs served', () => {
    it('answers 400 naming the models when no model is named and no default is set, then follows server.defaultModel', async () => {
      const kit = await start({
        models: [
          { name: 'story', path: STORIES },
          { name: 'tale', path: STORIES },
        ],
      });
      for (const path of ['/generate', '/infer']) {
        const res = await kit.request(path, { method: 'POST', body: { prompt: 'Once', max_tokens: 2 } });
        assert.equal(res.status, 400, JSON.stringify(res.body));
        const error = (res.body as { error: { code: string; message: string } }).error;
        assert.equal(error.code, 'model_required');
        assert.match(error.message, /several LLMs \(story, tale\).*server\.defaultModel/);
      }
      // A runtime key: the next request follows it, without a restart.
      kit.kernel.config.patch({ 'server.defaultModel': 'tale' }, { kind: 'runtime', name: 'test' });
      const res = await kit.request('/generate', { method: 'POST', body: { prompt: 'Once', max_tokens: 2 } });
      assert.equal(res.status, 200, JSON.stringify(res.body));
      assert.equal((res.body as { model: string }).model, 'tale');
    });
  });
});
