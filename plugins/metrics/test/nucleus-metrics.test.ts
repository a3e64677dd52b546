import assert from 'node:assert/strict';
import { BucketHistogram, CumulativeCounter, NucleusMetrics } from '@nucleus/plugin-metrics';
import type { EventBus } from '@nucleus/sdk';
import { Counter, Registry } from 'prom-client';
import { eventBus } from '@nucleus/sdk/testing';

interface Rig {
  bus: EventBus;
  registry: Registry;
  metrics: NucleusMetrics;
  detach(): void;
  /** The value of one series, by its name (with `_bucket`, `_sum`, `_count` for histograms) and labels. */
  value(metricName: string, labels?: Record<string, string | number>): Promise<number | undefined>;
}

function rig(namespace = 'nucleus'): Rig {
  const registry = new Registry();
  const metrics = new NucleusMetrics(registry, { namespace, throughputWindowS: 10 });
  const bus = eventBus();
  const detach = metrics.attach(bus);
  return {
    bus,
    registry,
    metrics,
    detach,
    async value(metricName, labels = {}) {
      for (const family of await registry.getMetricsAsJSON()) {
        for (const v of family.values as Array<{
          metricName?: string;
          labels: Record<string, string | number>;
          value: number;
        }>) {
          if ((v.metricName ?? family.name) !== metricName) continue;
          if (Object.entries(labels).every(([k, want]) => String(v.labels[k]) === String(want))) return v.value;
        }
      }
      return undefined;
    },
  };
}

const M = { model_name: 'llm', model_version: '' };

describe('metrics: nucleus metrics from kernel events', () => {
  it('times HTTP requests by method, route and status, counts errors by code and tracks those in flight', async () => {
    const r = rig();
    r.bus.emit('request.start', { requestId: '1', method: 'POST', path: '/a' });
    r.bus.emit('request.start', { requestId: '2', method: 'POST', path: '/a' });
    r.bus.emit('request.end', {
      requestId: '1',
      method: 'POST',
      path: '/a',
      route: '/a',
      status: 429,
      durationMs: 30,
      errorCode: 'queue_full',
    });
    assert.equal(await r.value('nucleus_http_requests_in_flight'), 1);
    const labels = { method: 'POST', route: '/a', status: '429' };
    assert.equal(await r.value('nucleus_http_request_duration_seconds_count', labels), 1);
    assert.equal(await r.value('nucleus_http_request_duration_seconds_sum', labels), 0.03);
    // 30 ms lies in the 0.05 s bucket, not in the 0.025 s one.
    assert.equal(await r.value('nucleus_http_request_duration_seconds_bucket', { ...labels, le: 0.025 }), 0);
    assert.equal(await r.value('nucleus_http_request_duration_seconds_bucket', { ...labels, le: 0.05 }), 1);
    assert.equal(await r.value('nucleus_http_request_errors_total', { route: '/a', code: 'queue_full' }), 1);
  });

  it('counts tensor requests by outcome and times queue and compute, leaving refused requests untimed', async () => {
    const r = rig();
    const labels = { model_name: 'mlp', model_version: '2' };
    r.bus.emit('inference.end', { model: 'mlp', version: '2', batchSize: 3, queueMs: 4, computeMs: 6, ok: true });
    r.bus.emit('inference.end', {
      model: 'mlp',
      version: '2',
      batchSize: 0,
      queueMs: 0,
      computeMs: 0,
      ok: false,
      errorCode: 'overloaded',
    });
    assert.equal(await r.value('nucleus_request_success_total', { ...labels, finished_reason: 'stop' }), 1);
    assert.equal(await r.value('nucleus_request_errors_total', { ...labels, code: 'overloaded' }), 1);
    assert.equal(await r.value('nucleus_e2e_request_latency_seconds_count', labels), 1);
    assert.equal(await r.value('nucleus_e2e_request_latency_seconds_sum', labels), 0.01);
    assert.equal(await r.value('nucleus_request_queue_time_seconds_sum', labels), 0.004);
    assert.equal(await r.value('nucleus_request_inference_time_seconds_sum', labels), 0.006);
  });

  it('counts each generated token once, streamed or not, and splits a generation into its phases', async () => {
    const r = rig();
    r.bus.emit('generation.start', {
      model: 'llm',
      requestId: 'g',
      promptTokens: 10,
      cachedPromptTokens: 6,
      priority: 'normal',
    });
    r.bus.emit('generation.tokens', { model: 'llm', requestId: 'g', tokens: 3, totalTokens: 3, itlMs: [10, 20] });
    r.bus.emit('generation.end', {
      model: 'llm',
      requestId: 'g',
      promptTokens: 10,
      completionTokens: 5,
      ttftMs: 50,
      queueMs: 20,
      meanItlMs: 99,
      durationMs: 200,
      finishReason: 'length',
      priority: 'normal',
    });
    assert.equal(await r.value('nucleus_generation_tokens_total', M), 5);
    assert.equal(await r.value('nucleus_prompt_tokens_total', M), 10);
    assert.equal(await r.value('nucleus_prefix_cache_queries_total', M), 10);
    assert.equal(await r.value('nucleus_prefix_cache_hits_total', M), 6);
    assert.equal(await r.value('nucleus_request_success_total', { ...M, finished_reason: 'length' }), 1);
    assert.equal(await r.value('nucleus_time_to_first_token_seconds_sum', M), 0.05);
    assert.equal(await r.value('nucleus_request_prefill_time_seconds_sum', M), 0.03);
    assert.equal(await r.value('nucleus_request_decode_time_seconds_sum', M), 0.15);
    assert.equal(await r.value('nucleus_request_inference_time_seconds_sum', M), 0.18);
    // Gaps came streamed, so the mean at the end is not counted again.
    assert.equal(await r.value('nucleus_inter_token_latency_seconds_count', M), 2);
    assert.equal(await r.value('nucleus_request_generation_tokens_count', M), 1);
    // Ten prompt tokens and five generated over the ten-second throughput window.
    assert.equal(await r.value('nucleus_avg_prompt_throughput_tokens_per_second', M), 1);
    assert.equal(await r.value('nucleus_avg_generation_throughput_tokens_per_second', M), 0.5);
  });

  it('an engine that reports only a mean inter-token latency has it counted once per gap; a failure by code', async () => {
    const r = rig();
    r.bus.emit('generation.end', {
      model: 'llm',
      requestId: 'q',
      promptTokens: 2,
      completionTokens: 4,
      meanItlMs: 5,
      durationMs: 30,
      finishReason: 'error',
      errorCode: 'worker_crashed',
      priority: 'low',
    });
    assert.equal(await r.value('nucleus_inter_token_latency_seconds_count', M), 3);
    assert.equal(await r.value('nucleus_inter_token_latency_seconds_sum', M), 0.015);
    assert.equal(await r.value('nucleus_request_errors_total', { ...M, code: 'worker_crashed' }), 1);
    assert.equal(await r.value('nucleus_generation_tokens_total', M), 4);
  });

  it('turns cumulative totals from caches and engines into counters that survive a source restart', async () => {
    const r = rig();
    const cache = { name: 'prefix', model: 'llm', evictions: 0, bytes: 30, capacityBytes: 120 };
    r.bus.emit('cache.stats', { ...cache, hits: 4, misses: 1 });
    r.bus.emit('cache.stats', { ...cache, hits: 10, misses: 2 });
    // The cache was recreated: its totals start again.
    r.bus.emit('cache.stats', { ...cache, hits: 3, misses: 1 });
    const labels = { cache: 'prefix', model_name: 'llm' };
    assert.equal(await r.value('nucleus_cache_hits_total', labels), 13);
    assert.equal(await r.value('nucleus_cache_misses_total', labels), 3);
    assert.equal(await r.value('nucleus_cache_hit_rate', labels), 0.75);
    assert.equal(await r.value('nucleus_cache_usage_perc', labels), 0.25);
    r.bus.emit('engine.stats', {
      model: 'llm',
      running: 2,
      waiting: 5,
      kvCacheUsage: 0.4,
      preemptionsTotal: 7,
      stepRecovery: { cacheFlushes: 1, splits: 2, failedAlone: 0 },
    });
    r.bus.emit('engine.stats', { model: 'llm', running: 1, waiting: 0, preemptionsTotal: 9 });
    assert.equal(await r.value('nucleus_num_requests_running', M), 1);
    assert.equal(await r.value('nucleus_kv_cache_usage_perc', M), 0.4);
    assert.equal(await r.value('nucleus_num_preemptions_total', M), 9);
    assert.equal(await r.value('nucleus_engine_step_recoveries_total', { ...M, action: 'split' }), 2);
  });

  it('batches in flight never go below zero, and only engines that report starts have them', async () => {
    const r = rig();
    const labels = { model_name: 'mlp', model_version: '1' };
    r.bus.emit('batch.executed', { model: 'mlp', version: '1', size: 2, paddingRatio: 0, durationMs: 1 });
    assert.equal(await r.value('nucleus_batches_in_flight', labels), undefined);
    r.bus.emit('batch.start', { model: 'mlp', version: '1', size: 2 });
    r.bus.emit('batch.start', { model: 'mlp', version: '1', size: 2 });
    r.bus.emit('batch.executed', { model: 'mlp', version: '1', size: 2, paddingRatio: 0.5, durationMs: 1 });
    assert.equal(await r.value('nucleus_batches_in_flight', labels), 1);
    assert.equal(await r.value('nucleus_batch_size_count', labels), 2);
    assert.equal(await r.value('nucleus_batch_padding_ratio_sum', labels), 0.5);
  });

  it('speculative decoding: drafts, tokens and the acceptance rate since start', async () => {
    const r = rig();
    r.bus.emit('spec.acceptance', { model: 'llm', method: 'ngram', proposedTokens: 8, acceptedTokens: 2, drafts: 2 });
    r.bus.emit('spec.acceptance', { model: 'llm', method: 'ngram', proposedTokens: 2, acceptedTokens: 3 });
    const labels = { ...M, method: 'ngram' };
    assert.equal(await r.value('nucleus_spec_decode_num_drafts_total', labels), 3);
    assert.equal(await r.value('nucleus_spec_decode_draft_acceptance_rate', labels), 0.5);
  });

  it('models, workers, devices and plugins: loaded flags, restarts, GPU gauges, one state per plugin', async () => {
    const r = rig();
    const v1 = { model_name: 'm', model_version: '1' };
    r.bus.emit('model.loaded', { model: 'm', version: '1', durationMs: 1500, backend: 'cpu' });
    assert.equal(await r.value('nucleus_model_loaded', v1), 1);
    assert.equal(await r.value('nucleus_model_load_time_seconds_sum', { ...v1, backend: 'cpu' }), 1.5);
    r.bus.emit('model.unloaded', { model: 'm', version: '1' });
    assert.equal(await r.value('nucleus_model_loaded', v1), 0);
    assert.equal(await r.value('nucleus_model_events_total', { ...v1, event: 'unloaded' }), 1);
    r.bus.emit('model.swapped', { model: 'm', fromVersion: '1', toVersion: '2', source: '/m.onnx', durationMs: 9 });
    r.bus.emit('model.swapFailed', { model: 'm', source: '/bad.onnx', error: 'no', rolledBack: true });
    r.bus.emit('model.swapFailed', { model: 'm', source: '/bad.onnx', error: 'no', rolledBack: true });
    assert.equal(await r.value('nucleus_model_swaps_total', { model_name: 'm', outcome: 'swapped' }), 1);
    assert.equal(await r.value('nucleus_model_swaps_total', { model_name: 'm', outcome: 'failed' }), 2);
    r.bus.emit('worker.health', { model: 'm', version: '1', worker: 2, healthy: false, restarts: 3 });
    assert.equal(await r.value('nucleus_worker_healthy', { ...v1, worker: '2' }), 0);
    assert.equal(await r.value('nucleus_worker_restarts_total', { ...v1, worker: '2' }), 3);
    r.bus.emit('device.stats', {
      backend: 'cuda',
      device: 0,
      name: 'H100',
      memoryUsedBytes: 5,
      memoryTotalBytes: 80,
      utilizationPercent: 25,
    });
    assert.equal(await r.value('nucleus_gpu_utilization_perc', { backend: 'cuda', gpu: '0', gpu_name: 'H100' }), 0.25);
    r.bus.emit('plugin.state', { id: 'p', version: '1.0.0', state: 'active', previous: 'activating' });
    r.bus.emit('plugin.state', { id: 'p', version: '1.1.0', state: 'failed', previous: 'activating' });
    assert.equal(await r.value('nucleus_plugin_state', { plugin: 'p', version: '1.1.0', state: 'failed' }), 1);
    assert.equal(await r.value('nucleus_plugin_state', { plugin: 'p', version: '1.1.0', state: 'active' }), 0);
    // The old version's series are gone, so a dashboard does not show the plugin twice.
    assert.equal(await r.value('nucleus_plugin_state', { plugin: 'p', version: '1.0.0' }), undefined);
    r.bus.emit('backend.fallback', { requested: 'cuda', chosen: 'cpu', reason: 'no driver' });
    assert.equal(await r.value('nucleus_backend_fallbacks_total', { requested: 'cuda', chosen: 'cpu' }), 1);
  });

  it('the vllm namespace serves vLLM’s own names; others get promtool-clean names', async () => {
    const vllm = await rig('vllm').registry.metrics();
    assert.match(vllm, /^# TYPE vllm:time_to_first_token_seconds histogram$/m);
    assert.match(vllm, /^# TYPE vllm:avg_generation_throughput_toks_per_s gauge$/m);
    const own = await rig('acme').registry.metrics();
    assert.match(own, /^# TYPE acme_avg_generation_throughput_tokens_per_second gauge$/m);
    assert.match(own, /^# TYPE acme_iteration_tokens histogram$/m);
    assert.doesNotMatch(own, /toks_per_s|vllm:/);
  });

  it('token delivery delays are a histogram in the exposition, and a detached collector hears nothing', async () => {
    const r = rig();
    r.bus.emit('generation.delivery', { model: 'llm', requestId: 'g', delaysMs: [0.2, 0.2, 4, 50] });
    const text = await r.registry.metrics();
    assert.match(text, /^nucleus_token_delivery_seconds_bucket\{le="0\.00025",model_name="llm",model_version=""\} 2$/m);
    assert.match(text, /^nucleus_token_delivery_seconds_bucket\{le="0\.005",model_name="llm",model_version=""\} 3$/m);
    assert.match(text, /^nucleus_token_delivery_seconds_bucket\{le="\+Inf",model_name="llm",model_version=""\} 4$/m);
    assert.match(text, /^nucleus_token_delivery_seconds_count\{model_name="llm",model_version=""\} 4$/m);
    r.detach();
    r.bus.emit('request.start', { requestId: 'x', method: 'GET', path: '/' });
    assert.equal(await r.value('nucleus_http_requests_in_flight'), 0);
  });
});

describe('metrics: building blocks', () => {
  it('a cumulative counter adds differences, and the whole total after the source restarted', async () => {
    const registry = new Registry();
    const counter = new Counter({ name: 'hits_total', help: 'h', labelNames: ['cache'], registers: [registry] });
    const cumulative = new CumulativeCounter(counter);
    for (const total of [5, 8, 8, 2, 4]) cumulative.observe({ cache: 'a' }, total);
    cumulative.observe({ cache: 'b' }, 1);
    const values = (await counter.get()).values.map((v) => [v.labels.cache, v.value]);
    assert.deepEqual(values, [
      ['a', 12],
      ['b', 1],
    ]);
  });

  it('a bucket histogram counts a value equal to a bound in that bucket, and reset forgets every series', async () => {
    const registry = new Registry();
    const h = new BucketHistogram('delay_seconds', 'd', ['route'], [1, 2], [registry]);
    h.observeAll({ route: '/a' }, [1000, 1500, 3000], 1 / 1000);
    const byLe = (await h.get()).values
      .filter((v) => v.metricName === 'delay_seconds_bucket')
      .map((v) => [v.labels.le, v.value]);
    assert.deepEqual(byLe, [
      [1, 1],
      [2, 2],
      ['+Inf', 3],
    ]);
    assert.match(await registry.metrics(), /^delay_seconds_sum\{route="\/a"\} 5\.5$/m);
    registry.resetMetrics();
    assert.deepEqual((await h.get()).values, []);
  });
});
