import { strict as assert } from 'node:assert';
import { rmSync } from 'node:fs';
import { startTestKernel, type TestKernel } from '@nucleus/sdk/testing';
import type { GenerationModelInfo } from '@nucleus/sdk';
import { tempDir } from '../helpers/paths.js';
import { writeUnusableBackend } from '../helpers/plugin-fixtures.js';
import { ADMIN_KEY, API_KSERVE, call } from './kserve-fixtures.js';

interface Condition {
  key: string;
  severity: string;
  reason: string;
}

interface StatusBody {
  llms: Array<{ name: string; backend?: string; requestedBackend?: string; fallbackReason?: string }>;
  embeddings: Array<{ name: string; backend?: string; requestedBackend?: string; fallbackReason?: string }>;
  readiness?: { status: string; conditions: Condition[] };
}

const FALLBACK = "backend 'nogpu' is unusable: no driver; running on cpu instead";

// Opens the built-in LLM and embedding model, which start on their first request.
async function useGenerationModels(kit: TestKernel): Promise<void> {
  const generation = kit.kernel.generation;
  for await (const _ of await generation.generate({ model: 'tiny-llama', prompt: 'hi', maxTokens: 1, temperature: 0 }));
  await generation.embed({ model: 'bert-tiny', input: 'hi' });
}

describe('LLMs and embedding models report a backend fallback as tensor models do', function () {
  this.timeout(120_000);
  let plugins: string;
  before(() => {
    plugins = tempDir('llm-backend');
    writeUnusableBackend(plugins, 'nogpu', 'no driver');
  });
  after(() => rmSync(plugins, { recursive: true, force: true }));

  it('a fallback leaves /ready 200 but degraded with a condition per model, and /status and the model info say why', async () => {
    const kit = await startTestKernel({
      plugins: [plugins, API_KSERVE],
      env: { NUCLEUS_ADMIN_KEY: ADMIN_KEY },
      config: { backend: 'nogpu' },
    });
    try {
      await useGenerationModels(kit);
      const ready = await kit.request('/ready');
      assert.deepEqual([ready.status, (ready.body as { status: string }).status], [200, 'degraded']);
      const conditions = (ready.body as { conditions: Condition[] }).conditions;
      for (const model of ['tiny-llama', 'bert-tiny']) {
        const condition = conditions.find((c) => c.key === `backend:${model}@1`);
        assert.deepEqual(condition, {
          key: `backend:${model}@1`,
          severity: 'degraded',
          reason: `model '${model}' version '1': ${FALLBACK}`,
        });
        const info: GenerationModelInfo = kit.kernel.generation.get(model);
        assert.deepEqual([info.backend, info.requestedBackend, info.fallbackReason], ['cpu', 'nogpu', FALLBACK]);
      }
      // The tensor built-ins report the same way.
      assert.ok(conditions.some((c) => c.key === 'backend:mlp-classifier@1'));
      const status = (await call(kit, '/status')).body as StatusBody;
      // /status says the same as /ready: serving, degraded, and why.
      assert.deepEqual(
        [status.readiness?.status, status.readiness?.conditions.length],
        ['degraded', conditions.length],
      );
      const llm = status.llms.find((m) => m.name === 'tiny-llama');
      assert.deepEqual([llm?.backend, llm?.requestedBackend, llm?.fallbackReason], ['cpu', 'nogpu', FALLBACK]);
      const embedding = status.embeddings.find((m) => m.name === 'bert-tiny');
      assert.deepEqual(
        [embedding?.backend, embedding?.requestedBackend, embedding?.fallbackReason],
        ['cpu', 'nogpu', FALLBACK],
      );
      assert.equal(
        status.llms.some((m) => m.name === 'bert-tiny'),
        false,
        'an embedding model is not listed as an LLM',
      );
    } finally {
      await kit.stop();
    }
  });

  it('a backend that is used as asked gives no condition and no fallback reason', async () => {
    const kit = await startTestKernel({
      plugins: [plugins, API_KSERVE],
      env: { NUCLEUS_ADMIN_KEY: ADMIN_KEY },
      config: { backend: 'cpu' },
    });
    try {
      await useGenerationModels(kit);
      const ready = await kit.request('/ready');
      assert.equal(ready.status, 200, JSON.stringify(ready.body));
      const status = (await call(kit, '/status')).body as StatusBody;
      assert.deepEqual([status.readiness?.status, status.readiness?.conditions], ['ready', []]);
      const llm = status.llms.find((m) => m.name === 'tiny-llama');
      assert.deepEqual([llm?.backend, llm?.requestedBackend, llm?.fallbackReason], ['cpu', 'cpu', undefined]);
    } finally {
      await kit.stop();
    }
  });
});
