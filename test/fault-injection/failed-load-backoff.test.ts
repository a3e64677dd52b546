import { strict as assert } from 'node:assert';
import { rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startTestKernel, type TestKernel } from '@nucleus/sdk/testing';
import { writeTestLlamaGguf } from '../llm-formats/gguf-fixtures.js';
import { REPO_ROOT, tempDir } from '../helpers/paths.js';
import { admin, ADMIN, errorOf, startLifecycleKernel } from '../model-lifecycle/lifecycle-fixtures.js';

/** A GGUF whose last tensor runs past the end of the file: its format claims it, and its load fails. */
function writeBroken(path: string): void {
  writeTestLlamaGguf(path);
  truncateSync(path, statSync(path).size - 100);
}

/** What /status shows of an LLM. */
interface LlmStatus {
  name: string;
  state: string;
  loadRetry?: { failures: number; reason: string; retryAt: string; retryAfterMs: number };
}

async function llmStatus(kit: TestKernel, name: string): Promise<LlmStatus | undefined> {
  const res = await admin(kit, '/status');
  assert.equal(res.status, 200, JSON.stringify(res.body));
  return (res.body as { llms: LlmStatus[] }).llms.find((m) => m.name === name);
}

function complete(kit: TestKernel, model: string): ReturnType<TestKernel['request']> {
  return kit.request('/v1/completions', {
    body: { model, prompt: 'the abc', max_tokens: 3, temperature: 0 },
    headers: { authorization: `Bearer ${ADMIN}` },
  });
}

/** Counts load attempts (`model.loading`) of `model` from now on. */
function countLoads(kit: TestKernel, model: string): { readonly count: number } {
  const seen = { count: 0 };
  kit.kernel.events.on('model.loading', (e) => {
    if (e.model === model) seen.count++;
  });
  return seen;
}

describe('fault injection: a model that failed to load is tried again only after its back-off', function () {
  this.timeout(180_000);
  let dir: string;
  let kit: TestKernel | undefined;
  beforeEach(() => {
    dir = tempDir('load-backoff');
  });
  afterEach(async () => {
    await kit?.stop();
    kit = undefined;
    rmSync(dir, { recursive: true, force: true });
  });

  it('refuses requests with 503 and Retry-After without loading again; /status and /ready say why and when', async () => {
    const path = join(dir, 'flaky.gguf');
    writeBroken(path);
    kit = await startLifecycleKernel({
      models: [{ name: 'flaky', path, optional: true }],
      'breaker.loadBackoffMs': 60_000,
    });
    const loads = countLoads(kit, 'flaky');
    for (let i = 0; i < 5; i++) {
      const res = await complete(kit, 'flaky');
      assert.equal(res.status, 503, JSON.stringify(res.body));
      const error = errorOf(res);
      assert.equal(error.code, 'model_unavailable');
      assert.match(error.message, /past the end of the file \(\d+ bytes\): the file is truncated/);
      assert.match(error.message, /tried again on a request after \d{4}-\d\d-\d\dT/);
      // No path beyond the one configured.
      for (const p of error.message.match(/\/[^\s:;,'"()]+/g) ?? [])
        assert.ok(p === path || p.startsWith(`${path}/`), `${p} in ${error.message}`);
      const retryAfter = Number(res.headers.get('retry-after'));
      assert.ok(Number.isInteger(retryAfter) && retryAfter >= 1 && retryAfter <= 60, `Retry-After ${retryAfter}`);
    }
    // The load at start was the only attempt: none of the requests started another.
    assert.equal(loads.count, 0);
    const status = await llmStatus(kit, 'flaky');
    assert.equal(status?.state, 'failed');
    assert.equal(status?.loadRetry?.failures, 1);
    assert.match(status?.loadRetry?.reason ?? '', /the file is truncated/);
    assert.ok(Date.parse(status?.loadRetry?.retryAt ?? '') > Date.now(), JSON.stringify(status));
    // Optional: /ready stays 200 (degraded) and names the failure and the time of the next attempt.
    const ready = await kit.request('/ready');
    assert.equal(ready.status, 200, JSON.stringify(ready.body));
    const conditions = (ready.body as { conditions: { key: string; reason: string }[] }).conditions;
    const flaky = conditions.find((c) => c.key === 'model:flaky@1');
    assert.match(flaky?.reason ?? '', /failed to load: .*truncated.*; tried again on a request after \d{4}-/);
  });

  it('loads the fixed file on the first request after a short back-off', async () => {
    const path = join(dir, 'flaky.gguf');
    writeBroken(path);
    kit = await startLifecycleKernel({
      models: [{ name: 'flaky', path, optional: true }],
      'breaker.loadBackoffMs': 200,
      'breaker.loadBackoffMaxMs': 200,
    });
    const loads = countLoads(kit, 'flaky');
    writeTestLlamaGguf(path);
    // Requests before the back-off ends are refused; one after it loads the fixed file and answers.
    let answered: Awaited<ReturnType<typeof complete>> | undefined;
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline) {
      const res = await complete(kit, 'flaky');
      if (res.status === 200) {
        answered = res;
        break;
      }
      assert.deepEqual([res.status, errorOf(res).code], [503, 'model_unavailable'], JSON.stringify(res.body));
      assert.ok(res.headers.get('retry-after'), 'a refusal says when to come back');
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.ok(answered, 'the fixed model never answered');
    assert.equal(loads.count, 1);
    const status = await llmStatus(kit, 'flaky');
    assert.equal(status?.state, 'ready');
    assert.equal(status?.loadRetry, undefined);
    const ready = await kit.request('/ready');
    const conditions = (ready.body as { conditions: { key: string }[] }).conditions;
    assert.equal(
      conditions.find((c) => c.key === 'model:flaky@1'),
      undefined,
    );
  });

  it('an admin load tries at once, whatever the back-off says', async () => {
    const path = join(dir, 'flaky.gguf');
    writeBroken(path);
    kit = await startLifecycleKernel({
      models: [{ name: 'flaky', path, optional: true }],
      'breaker.loadBackoffMs': 600_000,
    });
    const refused = await complete(kit, 'flaky');
    assert.equal(refused.status, 503);
    writeTestLlamaGguf(path);
    // Still backing off: the fixed file is not tried by a request.
    assert.equal((await complete(kit, 'flaky')).status, 503);
    // A load by name (KServe's repository API): from the model's config entry, at once.
    const loaded = await admin(kit, '/v2/repository/models/flaky/load', { method: 'POST', body: {} });
    assert.ok(loaded.status < 300, JSON.stringify(loaded.body));
    const res = await complete(kit, 'flaky');
    assert.equal(res.status, 200, JSON.stringify(res.body));
  });

  it('a change of the model’s config entry tries at once', async () => {
    const path = join(dir, 'flaky.gguf');
    writeBroken(path);
    // Without the lifecycle plugin, nothing swaps the model when its entry changes: only the back-off starts over.
    kit = await startTestKernel({
      plugins: [join(REPO_ROOT, 'plugins', 'api-openai')],
      env: { NUCLEUS_ADMIN_KEY: ADMIN },
      config: { models: [{ name: 'flaky', path, optional: true }], 'breaker.loadBackoffMs': 600_000 },
    });
    const loads = countLoads(kit, 'flaky');
    writeTestLlamaGguf(path);
    assert.equal((await complete(kit, 'flaky')).status, 503);
    assert.equal(loads.count, 0);
    const patched = await admin(kit, '/admin/config', {
      method: 'PATCH',
      body: { models: [{ name: 'flaky', path, optional: true, warmup: 1 }] },
    });
    assert.equal(patched.status, 200, JSON.stringify(patched.body));
    const res = await complete(kit, 'flaky');
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.equal(loads.count, 1);
  });

  it('a tensor model that failed to load is not loaded again by its requests at all', async () => {
    const path = join(dir, 'bad.onnx');
    writeFileSync(
      path,
      Uint8Array.from({ length: 512 }, (_, i) => (i * 37) & 0xff),
    );
    kit = await startLifecycleKernel({ models: [{ name: 'bad', path, optional: true }] });
    const loads = countLoads(kit, 'bad');
    for (let i = 0; i < 3; i++) {
      const res = await admin(kit, '/v2/models/bad/infer', {
        method: 'POST',
        body: { inputs: [{ name: 'input', shape: [1, 4], datatype: 'FP32', data: [0, 0, 0, 0] }] },
      });
      assert.deepEqual([res.status, errorOf(res).code], [503, 'model_not_ready'], JSON.stringify(res.body));
    }
    // It waits for an admin load or a config change; a request never starts one.
    assert.equal(loads.count, 0);
  });
});
