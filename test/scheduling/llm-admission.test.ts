import { strict as assert } from 'node:assert';
import { join } from 'node:path';
import { startTestKernel, type TestKernel } from '@nucleus/sdk/testing';
import { REPO_ROOT } from '../helpers/paths.js';

const API_PLUGIN = join(REPO_ROOT, 'plugins', 'api-openai');
const MODEL = 'tiny-llama';

interface Outcome {
  status: number;
  retryAfter: string | null;
  body: { error?: { code?: string; message?: string } };
}

async function complete(
  kit: TestKernel,
  body: Record<string, unknown>,
  headers: Record<string, string> = {},
): Promise<Outcome> {
  const res = await fetch(new URL('/v1/completions', kit.url), {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify({ model: MODEL, prompt: 'Once upon a time', max_tokens: 4, ...body }),
    signal: AbortSignal.timeout(100_000),
  });
  return {
    status: res.status,
    retryAfter: res.headers.get('retry-after'),
    body: (await res.json()) as Outcome['body'],
  };
}

function tally(outcomes: Outcome[]): Record<number, number> {
  const counts: Record<number, number> = {};
  for (const o of outcomes) counts[o.status] = (counts[o.status] ?? 0) + 1;
  return counts;
}

describe('admission control of generations over HTTP', () => {
  it('sheds a flood of 200 completions past the high watermark with 503 + Retry-After, answers all, then accepts again', async () => {
    const kit = await startTestKernel({
      plugins: [API_PLUGIN],
      env: { NUCLEUS_QUEUE_HIGH_WATERMARK: '8', NUCLEUS_QUEUE_LOW_WATERMARK: '4' },
      config: { 'scheduler.batchWindowMs': 5 },
    });
    try {
      assert.equal((await complete(kit, {})).status, 200); // warm the model
      // Long enough generations that the 32 running slots stay full while the rest of the flood arrives.
      const outcomes = await Promise.all(
        Array.from({ length: 200 }, () => complete(kit, { max_tokens: 64, ignore_eos: true })),
      );
      const counts = tally(outcomes);
      assert.deepEqual(Object.keys(counts).sort(), ['200', '503'], `statuses ${JSON.stringify(counts)}`);
      assert.ok(counts[503]! > 0 && counts[200]! > 0);
      for (const o of outcomes.filter((o) => o.status === 503)) {
        assert.equal(o.retryAfter, '1');
        assert.equal(o.body.error?.code, 'server_overloaded');
        assert.match(o.body.error?.message ?? '', /capacity/);
      }
      const after = await complete(kit, {});
      assert.equal(after.status, 200);
      const admission = kit.kernel.generation.admission;
      assert.deepEqual(admission, { running: 0, waiting: 0, shedding: false });
    } finally {
      await kit.stop();
    }
  });

  it('answers 408 with an error object to requests that outwait queue.timeoutMs; the rest complete', async () => {
    const kit = await startTestKernel({
      plugins: [API_PLUGIN],
      env: { NUCLEUS_QUEUE_TIMEOUT_MS: '1', NUCLEUS_SCHEDULER_MAX_RUNNING: '1' },
      config: { 'scheduler.batchWindowMs': 5 },
    });
    try {
      const outcomes = await Promise.all(Array.from({ length: 20 }, () => complete(kit, {})));
      const counts = tally(outcomes);
      assert.deepEqual(Object.keys(counts).sort(), ['200', '408'], `statuses ${JSON.stringify(counts)}`);
      for (const o of outcomes.filter((o) => o.status === 408)) assert.equal(o.body.error?.code, 'queue_timeout');
    } finally {
      await kit.stop();
    }
  });

  it('honours a request deadline from X-Request-Timeout-Ms, and a runtime change of queue.timeoutMs', async () => {
    const kit = await startTestKernel({
      plugins: [API_PLUGIN],
      config: { 'scheduler.maxRunning': 1, 'scheduler.batchWindowMs': 5 },
    });
    try {
      const long = complete(kit, { max_tokens: 200, ignore_eos: true });
      await new Promise((r) => setTimeout(r, 30));
      const late = await complete(kit, {}, { 'x-request-timeout-ms': '20' });
      assert.equal(late.status, 408);
      assert.match(late.body.error?.message ?? '', /deadline of 20 ms/);
      const bad = await complete(kit, {}, { 'x-request-timeout-ms': 'soon' });
      assert.equal(bad.status, 400);
      kit.kernel.config.patch({ 'queue.timeoutMs': 10 });
      const queued = await complete(kit, {});
      assert.equal(queued.status, 408);
      assert.equal((await long).status, 200);
    } finally {
      await kit.stop();
    }
  });
});
