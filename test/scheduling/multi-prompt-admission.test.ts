import { strict as assert } from 'node:assert';
import { join } from 'node:path';
import { startTestKernel, type TestKernel } from '@nucleus/sdk/testing';
import { REPO_ROOT } from '../helpers/paths.js';
import { until } from '../llm-engine/helpers.js';

const API_PLUGIN = join(REPO_ROOT, 'plugins', 'api-openai');
const MODEL = 'tiny-llama';

interface Answer {
  status: number;
  body: {
    choices?: { index: number; text: string }[];
    usage?: { completion_tokens: number };
    error?: { code?: string; message?: string; param?: string };
  };
}

async function complete(kit: TestKernel, body: Record<string, unknown>): Promise<Answer> {
  const res = await fetch(new URL('/v1/completions', kit.url), {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: MODEL, max_tokens: 4, temperature: 0, ...body }),
    signal: AbortSignal.timeout(100_000),
  });
  return { status: res.status, body: (await res.json()) as Answer['body'] };
}

describe('multi-prompt completions are admitted as one unit', () => {
  it('refuses more prompts than can ever run at once with 400 naming scheduler.maxRunning, instead of waiting for a 408', async () => {
    // Each prompt taking its own slot, two would run and the third wait for a slot the first two never give back
    // (their streams are read only once all three are admitted): the request would end in 408.
    const kit = await startTestKernel({
      plugins: [API_PLUGIN],
      config: { 'scheduler.maxRunning': 2, 'scheduler.batchWindowMs': 5, 'queue.timeoutMs': 3000 },
    });
    try {
      const refused = await complete(kit, { prompt: ['Once upon a time', 'Lily', 'The dog'] });
      assert.equal(refused.status, 400, JSON.stringify(refused.body));
      assert.equal(refused.body.error?.code, 'too_many_prompts');
      assert.equal(refused.body.error?.param, 'prompt');
      assert.match(refused.body.error?.message ?? '', /3 prompts.*at most 2.*scheduler\.maxRunning/);
      const fits = await complete(kit, { prompt: ['Once upon a time', 'Lily'] });
      assert.equal(fits.status, 200, JSON.stringify(fits.body));
      assert.deepEqual(
        fits.body.choices!.map((c) => c.index),
        [0, 1],
      );
      assert.deepEqual(kit.kernel.generation.admission, { running: 0, waiting: 0, shedding: false });
    } finally {
      await kit.stop();
    }
  });

  it('waits as one queue entry without holding part of the slots, then runs every prompt', async () => {
    const kit = await startTestKernel({
      plugins: [API_PLUGIN],
      config: { 'scheduler.maxRunning': 4, 'scheduler.batchWindowMs': 5 },
    });
    try {
      assert.equal((await complete(kit, { prompt: 'warm up' })).status, 200);
      const long = complete(kit, { prompt: 'Once upon a time', max_tokens: 240, n: 4, ignore_eos: true });
      const admission = () => kit.kernel.generation.admission;
      await until(() => admission().running === 1, 20_000, 'the long generation to run');
      const four = complete(kit, { prompt: ['a', 'b', 'c', 'd'] });
      // Three slots are free, but the request needs four together: it waits whole, holding none.
      await until(() => admission().waiting === 1, 20_000, 'the four-prompt request to queue');
      assert.equal(admission().running, 1);
      const [l, f] = await Promise.all([long, four]);
      assert.equal(l.status, 200);
      assert.equal(f.status, 200, JSON.stringify(f.body));
      assert.deepEqual(
        f.body.choices!.map((c) => c.index),
        [0, 1, 2, 3],
      );
      assert.deepEqual(admission(), { running: 0, waiting: 0, shedding: false });
    } finally {
      await kit.stop();
    }
  });
});
