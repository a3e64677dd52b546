import { strict as assert } from 'node:assert';
import { freemem, totalmem } from 'node:os';
import { join } from 'node:path';
import type { NucleusEvents, StatsSnapshot } from '@nucleus/sdk';
import { startTestKernel, type TestKernel } from '@nucleus/sdk/testing';
import { REPO_ROOT } from '../helpers/paths.js';
import { until } from '../llm-engine/helpers.js';

const PLUGINS = ['api-openai', 'cache-lru', 'stats'].map((p) => join(REPO_ROOT, 'plugins', p));
const CACHE_BYTES = 4 * 1024 * 1024;

async function stats(kit: TestKernel): Promise<StatsSnapshot> {
  return (await (await fetch(new URL('/server/stats', kit.url))).json()) as StatsSnapshot;
}

// Eight generations sent together (one request with eight prompts, which reach the worker at once); the most
// sequences the LLM's worker reported running at once meanwhile.
async function peakRunning(kit: TestKernel): Promise<number> {
  let peak = 0;
  const off = kit.kernel.events.on('engine.stats', (e) => {
    if (e.model === 'tiny-llama') peak = Math.max(peak, e.running);
  });
  try {
    const answer = await fetch(new URL('/v1/completions', kit.url), {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        model: 'tiny-llama',
        prompt: Array.from({ length: 8 }, (_, i) => `story ${i}`),
        max_tokens: 24,
        ignore_eos: true,
      }),
      signal: AbortSignal.timeout(60_000),
    });
    assert.equal(answer.status, 200, await answer.clone().text());
    assert.equal(((await answer.json()) as { choices: unknown[] }).choices.length, 8);
  } finally {
    off();
  }
  return peak;
}

describe('memory pressure (real free memory against memory.pressureFreeBytes)', () => {
  let kit: TestKernel | undefined;
  afterEach(async () => {
    await kit?.stop();
    kit = undefined;
  });

  it('halves LLM running sequences, the prefix cache and tensor batch sizes while free memory is below the threshold, and recovers', async () => {
    kit = await startTestKernel({
      plugins: PLUGINS,
      config: {
        'scheduler.maxRunning': 8,
        'scheduler.maxBatchSize': 8,
        'scheduler.batchWindowMs': 1000,
        'batching.maxBatchSize': 16,
        'cache.prefix.maxBytes': CACHE_BYTES,
        'memory.checkIntervalMs': 50,
      },
    });
    const k = kit.kernel;
    const changes: NucleusEvents['memory.pressure'][] = [];
    k.events.on('memory.pressure', (e) => changes.push(e));
    const tensor = k.inference
      .list()
      .map((m) => k.inference.get(m.name))
      .find((v) => v.batching?.enabled);
    assert.ok(tensor, 'a built-in tensor model that batches');
    const batchSize = () => k.inference.get(tensor.name).batching!.maxBatchSize;
    const cacheCapacity = async () =>
      (await stats(kit!)).caches.find((c) => c.name === 'prefix' && c.model === 'tiny-llama')?.capacityBytes;
    assert.equal(batchSize(), 16);
    assert.equal(await peakRunning(kit), 8, 'all eight run together without pressure');
    assert.equal(await cacheCapacity(), CACHE_BYTES);
    assert.equal(changes.length, 0);

    // More than this machine has: free memory is below it, whatever else runs here.
    const threshold = totalmem() * 2;
    assert.ok(freemem() < threshold);
    k.config.patch({ 'memory.pressureFreeBytes': threshold });
    await until(() => changes.length === 1, 5000, 'the pressure event');
    assert.equal(changes[0]!.underPressure, true);
    assert.equal(changes[0]!.thresholdBytes, threshold);
    assert.ok(changes[0]!.freeBytes > 0 && changes[0]!.freeBytes < threshold);
    assert.equal(k.memory.underPressure, true);
    assert.equal(batchSize(), 8);
    await until(() => k.generation.get('tiny-llama').running === 0, 5000, 'the engine to settle');
    assert.ok((await peakRunning(kit)) <= 4, 'at most half the sequences run at once under pressure');
    assert.equal(await cacheCapacity(), CACHE_BYTES / 2);
    const under = (await stats(kit)).memoryPressure;
    assert.equal(under?.underPressure, true);

    k.config.patch({ 'memory.pressureFreeBytes': 0 });
    await until(() => changes.length === 2, 5000, 'the event that pressure ended');
    assert.equal(changes[1]!.underPressure, false);
    assert.equal(batchSize(), 16);
    assert.equal(await peakRunning(kit), 8);
    assert.equal(await cacheCapacity(), CACHE_BYTES);
    assert.equal((await stats(kit)).memoryPressure?.underPressure, false);
  });
});
