import { strict as assert } from 'node:assert';
import { startTestKernel, type TestKernel } from '@nucleus/sdk/testing';
import { Exposition, pluginDir } from '../observability/helpers.js';

const SYSTEM =
  'You are a helpful storyteller. Tell short, kind stories about animals in the forest, with a happy ending and simple words.';

// The server as configured by default: the cache-lru plugin contributes the policy the prefix cache uses.
describe('prefix cache over HTTP (api-openai, cache-lru, metrics)', () => {
  let kit: TestKernel | undefined;
  before(async () => {
    kit = await startTestKernel({
      plugins: ['api-openai', 'cache-lru', 'metrics'].map(pluginDir),
      config: { 'cache.prefix.maxBytes': 8 * 1024 * 1024 },
    });
  });
  after(async () => {
    await kit?.stop();
  });

  it('reports cached prompt tokens in usage and in /metrics, and releases a conversation on DELETE', async () => {
    const ask = (question: string) =>
      kit!.request('/v1/chat/completions', {
        body: {
          model: 'tiny-llama',
          messages: [
            { role: 'system', content: SYSTEM },
            { role: 'user', content: question },
          ],
          max_tokens: 8,
          temperature: 0,
          conversation_id: 'talk-1',
        },
      });
    const first = (await ask('Who lives in the old oak?')).body as {
      usage: { prompt_tokens: number; prompt_tokens_details: { cached_tokens: number } };
      choices: { message: { content: string } }[];
    };
    assert.equal(first.usage.prompt_tokens_details.cached_tokens, 0);
    const second = (await ask('What does the fox eat?')).body as typeof first;
    assert.ok(
      second.usage.prompt_tokens_details.cached_tokens >= 32,
      `the system prompt came from the cache (${JSON.stringify(second.usage)})`,
    );
    const metrics = new Exposition((await kit!.request('/metrics')).body as string);
    const labels = { cache: 'prefix', model_name: 'tiny-llama' };
    assert.ok(metrics.value('nucleus_cache_hits_total', labels) >= 2);
    assert.ok(metrics.value('nucleus_cache_usage_bytes', labels) > 0);
    assert.equal(metrics.value('nucleus_cache_capacity_bytes', labels), 8 * 1024 * 1024);
    assert.ok(metrics.value('nucleus_prefix_cache_hits_total', { model_name: 'tiny-llama' }) >= 32);
    const released = await kit!.request('/conversations/talk-1', { method: 'DELETE' });
    assert.equal(released.status, 200);
    assert.ok((released.body as { released_bytes: number }).released_bytes > 0);
  });
});
