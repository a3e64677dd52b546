import assert from 'node:assert/strict';
import { type LatencyOverview, type ProcessSample, type SeriesLatency, StatsCollector } from '@nucleus/plugin-stats';
import type { EventBus } from '@nucleus/sdk';
import { eventBus } from '@nucleus/sdk/testing';

const PROCESS: ProcessSample = { rssBytes: 1, heapUsedBytes: 2, cpuPercent: 3, eventLoopLagMs: 4 };

function attached(): { bus: EventBus; stats: StatsCollector; detach: () => void } {
  const bus = eventBus();
  const stats = new StatsCollector({ windowS: 10, retentionS: 60, maxSamples: 1000 });
  return { bus, stats, detach: stats.attach(bus) };
}

function request(bus: EventBus, method: string, route: string, status: number, durationMs: number): void {
  bus.emit('request.start', { requestId: 'r', method, path: route });
  bus.emit('request.end', { requestId: 'r', method, path: route, route, status, durationMs });
}

describe('stats: stats collector', () => {
  it('counts requests in flight and in the window, with server and client errors apart', () => {
    const { bus, stats } = attached();
    bus.emit('request.start', { requestId: 'open', method: 'GET', path: '/slow' });
    request(bus, 'POST', '/v1/infer', 200, 10);
    request(bus, 'POST', '/v1/infer', 500, 30);
    request(bus, 'GET', '/v1/models/:name', 404, 20);
    const snap = stats.snapshot(PROCESS);
    assert.equal(snap.requests.inFlight, 1);
    assert.equal(snap.requests.total, 3);
    assert.deepEqual(snap.requests.window, { count: 3, errors: 1, clientErrors: 1, errorRate: 0.333 });
    assert.deepEqual(
      { count: snap.requests.latency.count, p50: snap.requests.latency.p50, max: snap.requests.latency.max },
      { count: 3, p50: 20, max: 30 },
    );
    assert.equal(snap.throughput.requestsPerS, 0.3);
    assert.equal(snap.windowS, 10);
    assert.deepEqual(snap.process, PROCESS);
  });

  it('keeps each model version apart: requests, errors, latency, time to first token and tokens', () => {
    const { bus, stats } = attached();
    bus.emit('inference.end', { model: 'mlp', version: '1', batchSize: 2, queueMs: 5, computeMs: 15, ok: true });
    bus.emit('inference.end', { model: 'mlp', version: '2', batchSize: 1, queueMs: 1, computeMs: 1, ok: false });
    // A request refused before it reached a batch counts, but has no latency.
    bus.emit('inference.end', { model: 'mlp', version: '2', batchSize: 0, queueMs: 0, computeMs: 0, ok: false });
    bus.emit('generation.start', { model: 'llm', requestId: 'g', promptTokens: 30, priority: 'normal' });
    bus.emit('generation.tokens', { model: 'llm', requestId: 'g', tokens: 5, totalTokens: 5 });
    bus.emit('generation.end', {
      model: 'llm',
      requestId: 'g',
      promptTokens: 30,
      completionTokens: 20,
      ttftMs: 12,
      durationMs: 100,
      queueMs: 3,
      finishReason: 'stop',
      priority: 'normal',
    });
    const snap = stats.snapshot(PROCESS);
    assert.deepEqual(
      snap.models.map((m) => [m.model, m.version, m.requests, m.errors, m.latency.count]),
      [
        ['llm', undefined, 1, 0, 1],
        ['mlp', '1', 1, 0, 1],
        ['mlp', '2', 2, 2, 1],
      ],
    );
    assert.equal(snap.models[0]!.ttft.p50, 12);
    // Five streamed tokens and fifteen more counted at the end: twenty over the ten-second window.
    assert.equal(snap.throughput.generatedTokensPerS, 2);
    assert.equal(snap.throughput.promptTokensPerS, 3);
    assert.equal(snap.throughput.inferencesPerS, 0.4);
    assert.equal(snap.models[1]!.latency.p50, 20);
  });

  it('answers latency per model, per endpoint and method, and overall; nothing for what it never saw', () => {
    const { bus, stats } = attached();
    request(bus, 'POST', '/v1/models/:name/infer', 200, 40);
    request(bus, 'GET', '/v1/models/:name/infer', 200, 8);
    bus.emit('inference.end', { model: 'm', version: 'a', batchSize: 1, queueMs: 2, computeMs: 8, ok: true });
    bus.emit('inference.end', { model: 'm', version: 'b', batchSize: 1, queueMs: 4, computeMs: 26, ok: true });
    const both = stats.latency({ windowS: 60, model: 'm' }) as SeriesLatency;
    assert.deepEqual([both.latency.count, both.latency.max, both.queue?.max], [2, 30, 4]);
    const one = stats.latency({ windowS: 60, model: 'm', version: 'a' }) as SeriesLatency;
    assert.deepEqual([one.version, one.latency.count, one.latency.max], ['a', 1, 10]);
    const post = stats.latency({ windowS: 60, endpoint: '/v1/models/:name/infer', method: 'post' }) as SeriesLatency;
    assert.deepEqual([post.method, post.latency.count, post.latency.p50], ['POST', 1, 40]);
    const overview = stats.latency({ windowS: 60 }) as LatencyOverview;
    assert.equal(overview.overall.count, 2);
    assert.deepEqual(
      overview.endpoints.map((e) => e.method),
      ['GET', 'POST'],
    );
    assert.deepEqual(
      overview.models.map((m) => m.version),
      ['a', 'b'],
    );
    assert.equal(stats.latency({ windowS: 60, model: 'other' }), undefined);
    assert.equal(stats.latency({ windowS: 60, model: 'm', version: 'c' }), undefined);
    assert.equal(stats.latency({ windowS: 60, endpoint: '/v1/models/:name/infer', method: 'DELETE' }), undefined);
    assert.deepEqual(stats.known(), { models: ['m'], endpoints: ['/v1/models/:name/infer'] });
  });

  it('keeps the last value of gauges: queues, engine state, workers, caches, devices, memory pressure', () => {
    const { bus, stats } = attached();
    bus.emit('queue.depth', { model: 'b', priority: 'normal', depth: 4 });
    bus.emit('queue.depth', { priority: 'high', depth: 1 });
    bus.emit('queue.depth', { model: 'b', priority: 'normal', depth: 2 });
    bus.emit('engine.stats', { model: 'llm', running: 3, waiting: 1, kvCacheUsage: 0.5 });
    bus.emit('worker.health', { model: 'llm', worker: 0, healthy: false, reason: 'crashed' });
    bus.emit('worker.health', { model: 'llm', worker: 0, healthy: true });
    bus.emit('cache.stats', { name: 'prefix', hits: 3, misses: 1, evictions: 0, bytes: 25, capacityBytes: 100 });
    bus.emit('cache.stats', { name: 'empty', hits: 0, misses: 0, evictions: 0, bytes: 0, capacityBytes: 0 });
    bus.emit('device.stats', { backend: 'cpu', device: 0, memoryUsedBytes: 1, memoryTotalBytes: 2 });
    bus.emit('memory.pressure', { underPressure: true, freeBytes: 10, thresholdBytes: 20 });
    const snap = stats.snapshot(PROCESS);
    assert.deepEqual(snap.queues, [
      { model: '*', priority: 'high', depth: 1 },
      { model: 'b', priority: 'normal', depth: 2 },
    ]);
    assert.deepEqual([snap.models[0]!.running, snap.models[0]!.waiting, snap.models[0]!.kvCacheUsage], [3, 1, 0.5]);
    assert.deepEqual(snap.workers, [{ model: 'llm', worker: 0, healthy: true }]);
    assert.deepEqual(
      snap.caches.map((c) => [c.name, c.hitRate, c.usage]),
      [
        ['prefix', 0.75, 0.25],
        ['empty', null, null],
      ],
    );
    assert.equal(snap.devices.length, 1);
    assert.equal(snap.memoryPressure?.underPressure, true);
  });

  it('tracks batches running and done, and the acceptance of speculative drafts', () => {
    const { bus, stats } = attached();
    bus.emit('batch.start', { model: 'm', version: '1', size: 4 });
    bus.emit('batch.start', { model: 'm', version: '1', size: 2 });
    bus.emit('batch.executed', { model: 'm', version: '1', size: 4, paddingRatio: 0.5, durationMs: 3 });
    bus.emit('spec.acceptance', { model: 'llm', method: 'ngram', proposedTokens: 8, acceptedTokens: 6, drafts: 2 });
    bus.emit('spec.acceptance', { model: 'llm', method: 'ngram', proposedTokens: 4, acceptedTokens: 0 });
    const snap = stats.snapshot(PROCESS);
    assert.deepEqual(
      [snap.batches.active, snap.batches.total, snap.batches.window],
      [1, 1, { count: 1, meanSize: 4, meanPaddingRatio: 0.5 }],
    );
    const llm = snap.models.find((m) => m.model === 'llm')!;
    assert.deepEqual(llm.speculation, [
      { method: 'ngram', drafts: 3, draftTokens: 12, acceptedTokens: 6, acceptanceRate: 0.5 },
    ]);
  });

  it('forgets an unloaded model version and its workers, and nothing more once detached', () => {
    const { bus, stats, detach } = attached();
    bus.emit('inference.end', { model: 'm', version: '1', batchSize: 1, queueMs: 0, computeMs: 1, ok: true });
    bus.emit('inference.end', { model: 'm', version: '2', batchSize: 1, queueMs: 0, computeMs: 1, ok: true });
    bus.emit('worker.health', { model: 'm', version: '1', worker: 0, healthy: true });
    bus.emit('model.unloaded', { model: 'm', version: '1' });
    const snap = stats.snapshot(PROCESS);
    assert.deepEqual(
      snap.models.map((m) => m.version),
      ['2'],
    );
    assert.deepEqual(snap.workers, []);
    detach();
    request(bus, 'GET', '/x', 200, 1);
    assert.equal(stats.snapshot(PROCESS).requests.total, 0);
  });

  it('starts a swapped model afresh: earlier versions and its unversioned (LLM) record go, other models stay', () => {
    const { bus, stats } = attached();
    bus.emit('inference.end', { model: 'm', version: '1', batchSize: 1, queueMs: 0, computeMs: 1, ok: true });
    bus.emit('inference.end', { model: 'other', version: '1', batchSize: 1, queueMs: 0, computeMs: 1, ok: true });
    bus.emit('engine.stats', { model: 'm', running: 1, waiting: 0 });
    bus.emit('model.swapped', { model: 'm', fromVersion: '1', toVersion: '2', source: 'x', durationMs: 1 });
    bus.emit('inference.end', { model: 'm', version: '2', batchSize: 1, queueMs: 0, computeMs: 1, ok: true });
    assert.deepEqual(
      stats
        .snapshot(PROCESS)
        .models.map((m) => `${m.model}@${m.version}`)
        .sort(),
      ['m@2', 'other@1'],
    );
  });

  it('a latency query may look back the retention, longer than the snapshot window', () => {
    const { bus, stats } = attached();
    request(bus, 'GET', '/x', 200, 7);
    const later = Date.now() + 30_000;
    assert.equal(stats.snapshot(PROCESS, later).requests.latency.count, 0);
    assert.equal((stats.latency({ windowS: 60 }, later) as LatencyOverview).overall.count, 1);
    assert.equal(stats.retentionS, 60);
  });
});
