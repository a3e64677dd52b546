import { strict as assert } from 'node:assert';
import type { LatencySummary, StatsSnapshot } from '@nucleus/sdk';
import { startTestKernel, type TestKernel } from '@nucleus/sdk/testing';
import WebSocket from 'ws';
import { pluginDir, until } from './helpers.js';

const ADMIN = 'admin-key-0123456789';
const admin = { authorization: `Bearer ${ADMIN}` };

describe('stats plugin', () => {
  let kit: TestKernel;
  before(async () => {
    kit = await startTestKernel({
      plugins: [pluginDir('stats')],
      env: { NUCLEUS_ADMIN_KEY: ADMIN },
      config: { 'plugin.stats': { windowS: 30, retentionS: 120, snapshotIntervalMs: 50 } },
    });
  });
  after(async () => {
    await kit.stop();
  });

  const stats = async () => {
    const res = await kit.request('/server/stats', { headers: admin });
    assert.equal(res.status, 200);
    return res.body as StatsSnapshot;
  };

  it('builds /server/stats from events: throughput, queues, batches, models, workers, caches, devices, process', async () => {
    const ev = kit.kernel.events;
    for (let i = 0; i < 3; i++) assert.equal((await kit.request('/health')).status, 200);
    assert.equal((await kit.request('/nowhere')).status, 404);
    ev.emit('queue.depth', { model: 'resnet', priority: 'high', depth: 2 });
    ev.emit('queue.depth', { model: 'resnet', priority: 'high', depth: 5 });
    ev.emit('batch.start', { model: 'resnet', version: '1', size: 8 });
    ev.emit('batch.start', { model: 'resnet', version: '1', size: 4 });
    ev.emit('batch.executed', { model: 'resnet', version: '1', size: 8, paddingRatio: 0.5, durationMs: 20 });
    ev.emit('inference.end', {
      model: 'resnet',
      version: '1',
      requestId: 'a',
      batchSize: 8,
      queueMs: 1,
      computeMs: 20,
      ok: true,
    });
    ev.emit('inference.end', {
      model: 'resnet',
      version: '1',
      requestId: 'b',
      batchSize: 0,
      queueMs: 100,
      computeMs: 0,
      ok: false,
      errorCode: 'queue_timeout',
    });
    ev.emit('generation.start', { model: 'llama', requestId: 'g', promptTokens: 30, priority: 'normal' });
    ev.emit('generation.tokens', { model: 'llama', requestId: 'g', tokens: 4, totalTokens: 4 });
    ev.emit('generation.end', {
      model: 'llama',
      requestId: 'g',
      promptTokens: 30,
      completionTokens: 10,
      ttftMs: 40,
      durationMs: 90,
      finishReason: 'stop',
      priority: 'normal',
    });
    ev.emit('engine.stats', { model: 'llama', running: 2, waiting: 1, kvCacheUsage: 0.25 });
    ev.emit('spec.acceptance', { model: 'llama', method: 'ngram', drafts: 4, proposedTokens: 12, acceptedTokens: 3 });
    ev.emit('spec.acceptance', { model: 'llama', method: 'ngram', drafts: 2, proposedTokens: 8, acceptedTokens: 7 });
    ev.emit('worker.health', {
      model: 'resnet',
      version: '1',
      worker: 0,
      healthy: false,
      reason: 'exited with code 134',
      restarts: 1,
    });
    ev.emit('cache.stats', {
      name: 'prefix',
      model: 'llama',
      hits: 6,
      misses: 2,
      evictions: 1,
      bytes: 512,
      capacityBytes: 2048,
    });
    ev.emit('device.stats', { backend: 'cuda', device: 0, memoryUsedBytes: 10, memoryTotalBytes: 100 });

    const s = await stats();
    assert.equal(s.windowS, 30);
    assert.ok(Date.parse(s.at) > 0);
    assert.equal(s.requests.total, 4);
    assert.equal(s.requests.inFlight, 1, 'the stats request itself');
    assert.deepEqual(s.requests.window, { count: 4, errors: 0, clientErrors: 1, errorRate: 0 });
    assert.equal(s.requests.latency.count, 4);
    assert.equal(s.throughput.requestsPerS, Math.round((4 / 30) * 1000) / 1000);
    assert.equal(s.throughput.generatedTokensPerS, Math.round((10 / 30) * 1000) / 1000);
    assert.equal(s.throughput.promptTokensPerS, 1);
    assert.deepEqual(s.queues, [{ model: 'resnet', priority: 'high', depth: 5 }]);
    assert.deepEqual(s.batches, { active: 1, total: 1, window: { count: 1, meanSize: 8, meanPaddingRatio: 0.5 } });
    const resnet = s.models.find((m) => m.model === 'resnet')!;
    assert.deepEqual(
      {
        requests: resnet.requests,
        errors: resnet.errors,
        activeBatches: resnet.activeBatches,
        version: resnet.version,
      },
      { requests: 2, errors: 1, activeBatches: 1, version: '1' },
    );
    assert.equal(resnet.latency.count, 1, 'a request that never ran has no latency');
    assert.equal(resnet.latency.p50, 21);
    const llama = s.models.find((m) => m.model === 'llama')!;
    assert.deepEqual(
      { running: llama.running, waiting: llama.waiting, kv: llama.kvCacheUsage, ttft: llama.ttft.p99 },
      { running: 2, waiting: 1, kv: 0.25, ttft: 40 },
    );
    assert.deepEqual(llama.speculation, [
      { method: 'ngram', drafts: 6, draftTokens: 20, acceptedTokens: 10, acceptanceRate: 0.5 },
    ]);
    assert.equal(resnet.speculation, undefined);
    assert.deepEqual(s.workers, [
      { model: 'resnet', version: '1', worker: 0, healthy: false, reason: 'exited with code 134', restarts: 1 },
    ]);
    assert.deepEqual(
      s.caches.map((c) => [c.name, c.hitRate, c.usage]),
      [['prefix', 0.75, 0.25]],
    );
    assert.equal(s.devices[0]?.memoryTotalBytes, 100);
    assert.ok(s.process.rssBytes > 0 && s.process.heapUsedBytes > 0);
  });

  it('answers p50/p95/p99 per model and per endpoint over a chosen window', async () => {
    for (let ms = 1; ms <= 100; ms++)
      kit.kernel.events.emit('inference.end', {
        model: 'bert',
        version: '3',
        batchSize: 1,
        queueMs: 0,
        computeMs: ms,
        ok: true,
      });
    const res = await kit.request('/server/stats/latency?model=bert&window=60', { headers: admin });
    assert.equal(res.status, 200);
    const body = res.body as { windowS: number; model: string; latency: LatencySummary };
    assert.equal(body.windowS, 60);
    assert.deepEqual(
      { ...body.latency, mean: undefined },
      { count: 100, p50: 50, p95: 95, p99: 99, mean: undefined, max: 100 },
    );
    const versioned = await kit.request('/server/stats/latency?model=bert&version=3', { headers: admin });
    assert.equal((versioned.body as { latency: LatencySummary }).latency.count, 100);

    const endpoint = await kit.request('/server/stats/latency?endpoint=/health&method=get', { headers: admin });
    assert.equal(endpoint.status, 200);
    assert.equal((endpoint.body as { latency: LatencySummary }).latency.count, 3);
    const overview = (await kit.request('/server/stats/latency?window=10', { headers: admin })).body as {
      overall: LatencySummary;
      endpoints: Array<{ endpoint: string }>;
      models: Array<{ model: string }>;
    };
    assert.ok(overview.overall.count >= 4);
    assert.ok(overview.endpoints.some((e) => e.endpoint === '/health'));
    assert.deepEqual(
      overview.models.map((m) => m.model),
      ['bert', 'llama', 'resnet'],
    );

    const unknown = await kit.request('/server/stats/latency?model=nope', { headers: admin });
    assert.equal(unknown.status, 404);
    assert.match((unknown.body as { error: { message: string } }).error.message, /known: bert, llama, resnet/);
    for (const bad of ['window=0', 'window=121', 'window=abc', 'model=bert&endpoint=/health']) {
      const r = await kit.request(`/server/stats/latency?${bad}`, { headers: admin });
      assert.equal(r.status, 400, bad);
    }
  });

  it('forgets samples older than the window', async () => {
    kit.kernel.events.emit('inference.end', {
      model: 'gpt',
      version: '1',
      batchSize: 1,
      queueMs: 0,
      computeMs: 5,
      ok: true,
    });
    const latency = async () =>
      (
        (await kit.request('/server/stats/latency?model=gpt&window=1', { headers: admin })).body as {
          latency: LatencySummary;
        }
      ).latency;
    assert.equal((await latency()).count, 1);
    await new Promise((r) => setTimeout(r, 1100));
    assert.deepEqual(await latency(), { count: 0, p50: null, p95: null, p99: null, mean: null, max: null });
  });

  it('feeds a metrics topic on /ws with periodic snapshots, beside the built-in topics', async () => {
    const ws = new WebSocket(`${kit.url.replace('http', 'ws')}/ws`, { headers: admin });
    const messages: Array<{
      type: string;
      topic?: string;
      event?: string;
      topics?: string[];
      data?: StatsSnapshot & { id?: string };
    }> = [];
    ws.on('message', (raw) => messages.push(JSON.parse(raw.toString())));
    await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
    try {
      await until(() => messages.some((m) => m.type === 'welcome'), 'the welcome frame');
      assert.deepEqual(messages[0]!.topics, ['plugins', 'models', 'requests', 'config', 'metrics']);
      ws.send(JSON.stringify({ type: 'subscribe', topics: ['metrics', 'requests'] }));
      await until(() => messages.some((m) => m.topic === 'metrics'), 'a stats snapshot');
      const snapshot = messages.find((m) => m.topic === 'metrics')!;
      assert.equal(snapshot.event, 'stats.snapshot');
      assert.equal(snapshot.data?.windowS, 30);
      await kit.request('/health');
      await until(
        () => messages.some((m) => m.topic === 'requests' && m.event === 'request.end'),
        'a built-in topic event',
      );

      // Without the plugin the topic is gone for new subscriptions; the built-in ones stay.
      assert.equal((await kit.request('/admin/plugins/stats/disable', { method: 'POST', headers: admin })).status, 200);
      messages.length = 0;
      ws.send(JSON.stringify({ type: 'subscribe', topics: ['metrics'] }));
      await until(() => messages.some((m) => m.type === 'error'), 'an error frame');
      ws.send(JSON.stringify({ type: 'subscribe', topics: ['plugins'] }));
      await until(() => messages.some((m) => m.type === 'subscribed'), 'a subscription to a built-in topic');
      assert.equal((await kit.request('/server/stats', { headers: admin })).status, 404);
    } finally {
      ws.close();
      await kit.request('/admin/plugins/stats/enable', { method: 'POST', headers: admin });
    }
  });
});
