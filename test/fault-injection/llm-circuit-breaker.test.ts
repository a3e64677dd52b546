import { strict as assert } from 'node:assert';
import { join } from 'node:path';
import type { GenerationStream, NucleusEvents } from '@nucleus/sdk';
import { NucleusError } from '@nucleus/sdk';
import { startTestKernel, type TestKernel } from '@nucleus/sdk/testing';
import type { GenerationEngine } from '@nucleus/core/internal/engine/llm/generation/generation-engine';
import { REPO_ROOT } from '../helpers/paths.js';
import { requireStories, STORIES_DIR } from '../llm-formats/llm-module.js';
import { generateAll, ofType, testEngine } from '../llm-engine/engine-helpers.js';

const API_PLUGIN = join(REPO_ROOT, 'plugins', 'api-openai');

// A generation whose worker thread is ended the way a crash would, once its first token has come: the stream fails
// with 503 worker_exited, a server-side failure.
async function crashMidGeneration(engine: GenerationEngine, model: string): Promise<NucleusError> {
  const stream: GenerationStream = await engine.generate({
    model,
    prompt: 'Once upon a time',
    maxTokens: 200,
    n: 4,
    ignoreEos: true,
  });
  const it = stream[Symbol.asyncIterator]();
  await it.next();
  await engine.killWorker(model);
  try {
    for (let r = await it.next(); !r.done; r = await it.next());
  } catch (err) {
    assert.ok(err instanceof NucleusError);
    return err;
  }
  assert.fail('the generation outlived its worker');
}

async function post(
  kit: TestKernel,
  path: string,
  body: unknown,
): Promise<{
  status: number;
  headers: Headers;
  body: { error?: { code?: string; message?: string }; model?: string };
}> {
  const res = await fetch(new URL(path, kit.url), {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(60_000),
  });
  return { status: res.status, headers: res.headers, body: (await res.json()) as never };
}

describe('fault injection: circuit breaker of an LLM', () => {
  let kit: TestKernel | undefined;
  afterEach(async () => {
    await kit?.stop();
    kit = undefined;
  });

  it('opens after N failed generations, answers 503 circuit_open with Retry-After, shows in /ready and events, and a good trial closes it', async () => {
    kit = await startTestKernel({
      plugins: [API_PLUGIN, join(REPO_ROOT, 'plugins', 'api-kserve')],
      config: { 'breaker.failureThreshold': 2, 'breaker.cooldownMs': 800, 'scheduler.batchWindowMs': 5 },
    });
    const k = kit.kernel;
    const events: NucleusEvents['breaker.state'][] = [];
    k.events.on('breaker.state', (e) => events.push(e));
    const complete = () => post(kit!, '/v1/completions', { model: 'tiny-llama', prompt: 'Lily', max_tokens: 4 });
    assert.equal((await complete()).status, 200);
    // A request the model refuses says nothing about whether it works.
    assert.equal(
      (await post(kit, '/v1/completions', { model: 'tiny-llama', prompt: 'Lily', max_tokens: 100_000 })).status,
      400,
    );
    for (let i = 0; i < 2; i++)
      assert.equal((await crashMidGeneration(k.generation, 'tiny-llama')).code, 'worker_exited');
    assert.equal(k.generation.get('tiny-llama').breaker?.state, 'open');
    const refused = await complete();
    assert.equal(refused.status, 503);
    assert.equal(refused.body.error?.code, 'circuit_open');
    assert.match(refused.body.error?.message ?? '', /model 'tiny-llama' is failing/);
    assert.ok(Number(refused.headers.get('retry-after')) >= 1);
    const ready = await fetch(new URL('/ready', kit.url));
    const report = (await ready.json()) as { status: string; conditions: { key: string; reason: string }[] };
    assert.equal(ready.status, 503);
    assert.equal(report.status, 'unavailable');
    assert.ok(
      report.conditions.some((c) => c.key === 'breaker:tiny-llama' && /circuit breaker open/.test(c.reason)),
      JSON.stringify(report),
    );
    assert.deepEqual(
      events.map((e) => [e.model, e.state]),
      [['tiny-llama', 'open']],
    );
    const status = (await (await fetch(new URL('/status', kit.url))).json()) as {
      llms: { name: string; breaker?: { state: string; consecutiveFailures: number; retryAfterMs?: number } }[];
    };
    const llm = status.llms.find((m) => m.name === 'tiny-llama');
    assert.equal(llm?.breaker?.state, 'open', JSON.stringify(status.llms));
    assert.equal(llm.breaker.consecutiveFailures, 2);
    assert.ok(llm.breaker.retryAfterMs! > 0);

    await new Promise((r) => setTimeout(r, 850));
    assert.equal(k.generation.get('tiny-llama').breaker?.state, 'half-open');
    assert.equal((await complete()).status, 200);
    assert.equal(k.generation.get('tiny-llama').breaker?.state, 'closed');
    assert.equal((await fetch(new URL('/ready', kit.url))).status, 200);
    assert.deepEqual(
      events.map((e) => e.state),
      ['open', 'half-open', 'closed'],
    );
  });

  it('counts the requests one failed step ends as one failure, and opens on failed steps', async () => {
    const { engine } = testEngine(
      { 'breaker.failureThreshold': 2, 'breaker.cooldownMs': 60_000, 'scheduler.batchWindowMs': 300 },
      {
        faultInjection: {
          failRuns:
            "Non-zero status code returned while running Gather node. Name:'/embed' Status Message: indices element out of data bounds",
        },
      },
    );
    try {
      await engine.start();
      const run = (prompt: string) => generateAll(engine, { model: 'tiny-llama', prompt, maxTokens: 4 });
      // Three requests share one prefill step (the batch window holds them together); it fails for each of them.
      const outcomes = await Promise.allSettled(['Lily', 'The dog', 'Once upon a time'].map(run));
      for (const o of outcomes) {
        assert.equal(o.status, 'rejected');
        const err = (o as PromiseRejectedResult).reason as NucleusError;
        assert.equal(err.status, 500);
        assert.equal(err.code, 'generation_failed');
        assert.match(err.message, /indices element out of data bounds/);
      }
      assert.deepEqual(
        {
          state: engine.get('tiny-llama').breaker?.state,
          failures: engine.get('tiny-llama').breaker?.consecutiveFailures,
        },
        { state: 'closed', failures: 1 },
      );
      await assert.rejects(run('Lily'), (err: NucleusError) => err.code === 'generation_failed');
      assert.equal(engine.get('tiny-llama').breaker?.state, 'open');
      await assert.rejects(
        run('Lily'),
        (err: NucleusError) =>
          err.status === 503 && err.code === 'circuit_open' && Number(err.headers['retry-after']) >= 1,
      );
    } finally {
      await engine.stop();
    }
  });

  it('serves an LLM whose breaker is open with its configured fallback LLM, and says which model answered', async function () {
    requireStories(this);
    const path = join(STORIES_DIR, 'stories260K.gguf');
    const { engine, emitted } = testEngine({
      models: [
        { name: 'primary', path, fallback: 'backup' },
        { name: 'backup', path },
      ],
      'breaker.failureThreshold': 2,
      'breaker.cooldownMs': 60_000,
    });
    try {
      await engine.start();
      for (let i = 0; i < 2; i++) assert.equal((await crashMidGeneration(engine, 'primary')).code, 'worker_exited');
      assert.equal(engine.get('primary').breaker?.state, 'open');
      const stream = await engine.generate({
        model: 'primary',
        prompt: 'Once upon a time',
        maxTokens: 8,
        temperature: 0,
        ignoreEos: true,
      });
      assert.equal(stream.model, 'backup');
      let tokens = 0;
      for await (const e of stream) if (e.type === 'token') tokens++;
      assert.equal(tokens, 8);
      const fallbacks = ofType(emitted, 'model.fallback');
      assert.equal(fallbacks.length, 1);
      assert.equal(fallbacks[0]!.model, 'primary');
      assert.equal(fallbacks[0]!.fallback, 'backup');
      assert.match(fallbacks[0]!.reason, /^circuit_open: /);
      // Without a fallback the refusal is the client's answer.
      await assert.rejects(
        engine.generate({ model: 'backup', prompt: 'x', maxTokens: 1 }).then(async (s) => {
          for await (const _ of s);
          await crashMidGeneration(engine, 'backup');
          await crashMidGeneration(engine, 'backup');
          return engine.generate({ model: 'primary', prompt: 'x', maxTokens: 1 });
        }),
        (err: NucleusError) => err.status === 503 && err.code === 'circuit_open' && /model 'primary'/.test(err.message),
      );
    } finally {
      await engine.stop();
    }
  });
});
