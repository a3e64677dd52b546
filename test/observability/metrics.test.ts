import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { startTestKernel, type TestKernel } from '@nucleus/sdk/testing';
import { tempDir } from '../helpers/paths.js';
import { writePlugin } from '../helpers/plugin-fixtures.js';
import { Exposition, freePort, pluginDir } from './helpers.js';

describe('metrics plugin', () => {
  let kit: TestKernel;
  let folder: string;
  const scrape = async () => {
    const res = await kit.request('/metrics');
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
    return new Exposition(res.body as string);
  };

  before(async () => {
    folder = tempDir('metrics');
    // An exporter that throws on every request: requests must not notice.
    writePlugin(folder, {
      id: 'broken-exporter',
      activate: `ctx.events.on('request.end', () => { throw new Error('exporter down'); });`,
    });
    kit = await startTestKernel({ plugins: [pluginDir('metrics'), pluginDir('stats'), folder] });
  });
  after(async () => {
    await kit.stop();
    rmSync(folder, { recursive: true, force: true });
  });

  it('serves an exposition a Prometheus text-format parser accepts, with HELP and TYPE for every family', async () => {
    const exposition = await scrape();
    assert.ok(exposition.families.size > 40);
    for (const f of exposition.families.values()) {
      assert.ok(f.help.length > 0, `${f.name} has HELP`);
      assert.ok(
        /^(nucleus|process|nodejs)_/.test(f.name),
        `${f.name} is in the nucleus_ family or a standard process metric`,
      );
    }
    assert.ok(exposition.value('process_resident_memory_bytes') > 0);
    assert.ok(exposition.value('process_cpu_seconds_total') >= 0);
    assert.ok(exposition.value('nodejs_heap_size_used_bytes') > 0);
  });

  it('shows plugin states from activation on, including plugins activated before it', async () => {
    const exposition = await scrape();
    for (const plugin of ['metrics', 'stats', 'broken-exporter']) {
      assert.equal(exposition.value('nucleus_plugin_state', { plugin, state: 'active' }), 1, `${plugin} active`);
      assert.equal(exposition.value('nucleus_plugin_state', { plugin, state: 'failed' }), 0);
    }
  });

  it('counts HTTP requests by route and errors by code, and a throwing exporter fails no request', async () => {
    assert.equal((await kit.request('/health')).status, 200);
    const missing = await kit.request('/no/such/thing');
    assert.equal(missing.status, 404);
    const exposition = await scrape();
    assert.ok(
      exposition.count('nucleus_http_request_duration_seconds', { method: 'GET', route: '/health', status: '200' }) >=
        1,
    );
    assert.equal(
      exposition.value('nucleus_http_request_errors_total', { route: 'unmatched', code: 'route_not_found' }),
      1,
    );
    // The scrape itself is the one request in flight.
    assert.equal(exposition.value('nucleus_http_requests_in_flight'), 1);
  });

  it('turns tensor inference, batching and queue events into per-model metrics', async () => {
    const ev = kit.kernel.events;
    ev.emit('queue.depth', { model: 'resnet', priority: 'high', depth: 3 });
    ev.emit('queue.depth', { priority: 'normal', depth: 7 });
    ev.emit('batch.start', { model: 'resnet', version: '2', size: 4 });
    ev.emit('batch.start', { model: 'resnet', version: '2', size: 2 });
    ev.emit('batch.executed', { model: 'resnet', version: '2', size: 4, paddingRatio: 0.25, durationMs: 12 });
    for (let i = 0; i < 4; i++)
      ev.emit('inference.end', {
        model: 'resnet',
        version: '2',
        requestId: `r${i}`,
        batchSize: 4,
        queueMs: 3,
        computeMs: 12,
        ok: true,
      });
    ev.emit('inference.end', {
      model: 'resnet',
      version: '2',
      batchSize: 0,
      queueMs: 30000,
      computeMs: 0,
      ok: false,
      errorCode: 'queue_timeout',
    });
    const m = { model_name: 'resnet', model_version: '2' };
    const exposition = await scrape();
    assert.equal(exposition.value('nucleus_queue_depth', { model_name: 'resnet', priority: 'high' }), 3);
    assert.equal(exposition.value('nucleus_queue_depth', { model_name: '*', priority: 'normal' }), 7);
    assert.equal(exposition.value('nucleus_batches_in_flight', m), 1);
    assert.equal(exposition.count('nucleus_batch_size', m), 1);
    assert.equal(exposition.sum('nucleus_batch_padding_ratio', m), 0.25);
    assert.equal(exposition.value('nucleus_request_success_total', { ...m, finished_reason: 'stop' }), 4);
    assert.equal(exposition.value('nucleus_request_errors_total', { ...m, code: 'queue_timeout' }), 1);
    // A request that never ran adds no latency sample.
    assert.equal(exposition.count('nucleus_e2e_request_latency_seconds', m), 4);
    assert.ok(Math.abs(exposition.sum('nucleus_e2e_request_latency_seconds', m) - 4 * 0.015) < 1e-9);
    assert.ok(Math.abs(exposition.sum('nucleus_request_queue_time_seconds', m) - 4 * 0.003) < 1e-9);
    assert.equal(exposition.bucket('nucleus_e2e_request_latency_seconds', m, '0.01'), 0);
    assert.equal(exposition.bucket('nucleus_e2e_request_latency_seconds', m, '0.025'), 4);
    assert.equal(exposition.family('nucleus_e2e_request_latency_seconds').type, 'HISTOGRAM');
  });

  it('turns generation events into vLLM-style token, TTFT and inter-token metrics', async () => {
    const ev = kit.kernel.events;
    const m = { model_name: 'llama', model_version: '' };
    ev.emit('generation.start', {
      model: 'llama',
      requestId: 'g1',
      promptTokens: 10,
      cachedPromptTokens: 6,
      priority: 'normal',
    });
    ev.emit('generation.tokens', { model: 'llama', requestId: 'g1', tokens: 2, totalTokens: 2, itlMs: [20] });
    ev.emit('generation.tokens', { model: 'llama', requestId: 'g1', tokens: 3, totalTokens: 5, itlMs: [20, 30, 30] });
    ev.emit('generation.end', {
      model: 'llama',
      requestId: 'g1',
      promptTokens: 10,
      completionTokens: 6,
      ttftMs: 50,
      meanItlMs: 25,
      durationMs: 200,
      queueMs: 10,
      finishReason: 'length',
      priority: 'normal',
    });
    // An engine that sends no token groups: the mean gap stands in for each gap.
    ev.emit('generation.start', { model: 'llama', requestId: 'g2', promptTokens: 4, priority: 'high' });
    ev.emit('generation.end', {
      model: 'llama',
      requestId: 'g2',
      promptTokens: 4,
      completionTokens: 3,
      ttftMs: 40,
      meanItlMs: 10,
      durationMs: 60,
      finishReason: 'stop',
      priority: 'high',
    });
    ev.emit('generation.end', {
      model: 'llama',
      requestId: 'g3',
      promptTokens: 4,
      completionTokens: 0,
      durationMs: 5,
      finishReason: 'error',
      errorCode: 'worker_crashed',
      priority: 'low',
    });
    ev.emit('engine.stats', { model: 'llama', running: 3, waiting: 2, kvCacheUsage: 0.4, preemptionsTotal: 1 });
    ev.emit('engine.stats', { model: 'llama', running: 1, waiting: 0, kvCacheUsage: 0.1, preemptionsTotal: 3 });
    ev.emit('engine.stats', {
      model: 'llama',
      running: 1,
      waiting: 0,
      stepRecovery: { cacheFlushes: 1, splits: 2, failedAlone: 0 },
    });
    ev.emit('engine.stats', {
      model: 'llama',
      running: 1,
      waiting: 0,
      stepRecovery: { cacheFlushes: 2, splits: 5, failedAlone: 1 },
    });
    ev.emit('engine.steps', { model: 'llama', phase: 'decode', steps: 4, sequences: 2, tokens: 8, durationMs: 40 });
    ev.emit('spec.acceptance', { model: 'llama', method: 'prompt-lookup', proposedTokens: 8, acceptedTokens: 5 });
    ev.emit('spec.acceptance', { model: 'llama', method: 'ngram', drafts: 3, proposedTokens: 10, acceptedTokens: 4 });
    ev.emit('spec.acceptance', { model: 'llama', method: 'ngram', drafts: 2, proposedTokens: 6, acceptedTokens: 4 });
    const exposition = await scrape();
    assert.equal(exposition.value('nucleus_prompt_tokens_total', m), 14);
    assert.equal(exposition.value('nucleus_generation_tokens_total', m), 9, 'streamed groups plus the uncounted rest');
    assert.equal(exposition.value('nucleus_prefix_cache_queries_total', m), 10);
    assert.equal(exposition.value('nucleus_prefix_cache_hits_total', m), 6);
    assert.equal(exposition.count('nucleus_time_to_first_token_seconds', m), 2);
    assert.ok(Math.abs(exposition.sum('nucleus_time_to_first_token_seconds', m) - 0.09) < 1e-9);
    assert.equal(exposition.count('nucleus_inter_token_latency_seconds', m), 4 + 2);
    assert.ok(Math.abs(exposition.sum('nucleus_inter_token_latency_seconds', m) - (0.1 + 0.02)) < 1e-9);
    assert.ok(Math.abs(exposition.sum('nucleus_request_prefill_time_seconds', m) - 0.04) < 1e-9);
    assert.equal(exposition.value('nucleus_request_success_total', { ...m, finished_reason: 'length' }), 1);
    assert.equal(exposition.value('nucleus_request_errors_total', { ...m, code: 'worker_crashed' }), 1);
    assert.equal(exposition.value('nucleus_num_requests_running', m), 1);
    assert.equal(exposition.value('nucleus_num_requests_waiting', m), 0);
    assert.equal(exposition.value('nucleus_kv_cache_usage_perc', m), 0.1);
    assert.equal(exposition.value('nucleus_num_preemptions_total', m), 3);
    assert.equal(exposition.value('nucleus_engine_step_recoveries_total', { ...m, action: 'cache_flush' }), 2);
    assert.equal(exposition.value('nucleus_engine_step_recoveries_total', { ...m, action: 'split' }), 5);
    assert.equal(exposition.value('nucleus_engine_step_recoveries_total', { ...m, action: 'failed_alone' }), 1);
    assert.equal(exposition.sum('nucleus_iteration_tokens', { ...m, phase: 'decode' }), 2);
    assert.equal(exposition.value('nucleus_spec_decode_num_draft_tokens_total', { ...m, method: 'prompt-lookup' }), 8);
    assert.equal(
      exposition.value('nucleus_spec_decode_num_accepted_tokens_total', { ...m, method: 'prompt-lookup' }),
      5,
    );
    assert.equal(
      exposition.value('nucleus_spec_decode_num_drafts_total', { ...m, method: 'prompt-lookup' }),
      1,
      'an event without drafts counts one',
    );
    assert.equal(exposition.value('nucleus_spec_decode_num_drafts_total', { ...m, method: 'ngram' }), 5);
    assert.equal(exposition.value('nucleus_spec_decode_num_draft_tokens_total', { ...m, method: 'ngram' }), 16);
    assert.equal(exposition.value('nucleus_spec_decode_draft_acceptance_rate', { ...m, method: 'ngram' }), 0.5);
    assert.equal(
      exposition.value('nucleus_spec_decode_draft_acceptance_rate', { ...m, method: 'prompt-lookup' }),
      5 / 8,
    );
    assert.ok(exposition.value('nucleus_avg_generation_throughput_tokens_per_second', m) > 0);
    assert.ok(exposition.value('nucleus_avg_prompt_throughput_tokens_per_second', m) > 0);
  });

  it('counts token delivery delays, reported in groups, into a histogram per model', async () => {
    const ev = kit.kernel.events;
    ev.emit('generation.delivery', { model: 'mistral', requestId: 'd1', delaysMs: [0.05, 0.3, 1, 4] });
    ev.emit('generation.delivery', { model: 'mistral', requestId: 'd2', delaysMs: [9.9, 12, 2000] });
    ev.emit('generation.delivery', { model: 'phi', version: '2', requestId: 'd3', delaysMs: [0.2] });
    const exposition = await scrape();
    const name = 'nucleus_token_delivery_seconds';
    assert.equal(exposition.family(name).type, 'HISTOGRAM');
    const m = { model_name: 'mistral', model_version: '' };
    assert.equal(exposition.count(name, m), 7);
    assert.ok(Math.abs(exposition.sum(name, m) - (0.05 + 0.3 + 1 + 4 + 9.9 + 12 + 2000) / 1000) < 1e-9);
    const cumulative = { '0.0001': 1, '0.0005': 2, '0.001': 3, '0.005': 4, '0.01': 5, '0.015': 6, '1': 6, '+Inf': 7 };
    for (const [le, n] of Object.entries(cumulative)) assert.equal(exposition.bucket(name, m, le), n, `le ${le}`);
    assert.equal(exposition.count(name, { model_name: 'phi', model_version: '2' }), 1);
    assert.equal(exposition.bucket(name, { model_name: 'phi', model_version: '2' }, '0.00025'), 1);
  });

  it('turns cumulative cache, worker, device and model lifecycle reports into counters and gauges', async () => {
    const ev = kit.kernel.events;
    ev.emit('cache.stats', {
      name: 'prefix',
      model: 'llama',
      hits: 3,
      misses: 1,
      evictions: 0,
      bytes: 100,
      capacityBytes: 1000,
    });
    ev.emit('cache.stats', {
      name: 'prefix',
      model: 'llama',
      hits: 9,
      misses: 3,
      evictions: 2,
      bytes: 500,
      capacityBytes: 1000,
    });
    ev.emit('worker.health', { model: 'resnet', version: '2', worker: 0, healthy: true, restarts: 0 });
    ev.emit('worker.health', {
      model: 'resnet',
      version: '2',
      worker: 1,
      healthy: false,
      reason: 'exited with code 1',
      restarts: 2,
    });
    ev.emit('device.stats', {
      backend: 'cuda',
      device: 0,
      name: 'NVIDIA H100',
      memoryUsedBytes: 2 ** 30,
      memoryTotalBytes: 80 * 2 ** 30,
      utilizationPercent: 35,
    });
    ev.emit('model.loading', { model: 'bert', version: '7' });
    ev.emit('model.loaded', { model: 'bert', version: '7', durationMs: 1500, backend: 'cpu' });
    ev.emit('model.unloaded', { model: 'bert', version: '7' });
    const c = { cache: 'prefix', model_name: 'llama' };
    const exposition = await scrape();
    assert.equal(exposition.value('nucleus_cache_hits_total', c), 9);
    assert.equal(exposition.value('nucleus_cache_misses_total', c), 3);
    assert.equal(exposition.value('nucleus_cache_evictions_total', c), 2);
    assert.equal(exposition.value('nucleus_cache_hit_rate', c), 0.75);
    assert.equal(exposition.value('nucleus_cache_usage_perc', c), 0.5);
    assert.equal(exposition.value('nucleus_worker_healthy', { model_name: 'resnet', worker: '1' }), 0);
    assert.equal(exposition.value('nucleus_worker_healthy', { model_name: 'resnet', worker: '0' }), 1);
    assert.equal(exposition.value('nucleus_worker_restarts_total', { model_name: 'resnet', worker: '1' }), 2);
    assert.equal(exposition.value('nucleus_gpu_memory_used_bytes', { backend: 'cuda', gpu: '0' }), 2 ** 30);
    assert.equal(exposition.value('nucleus_gpu_utilization_perc', { backend: 'cuda', gpu: '0' }), 0.35);
    const bert = { model_name: 'bert', model_version: '7' };
    assert.equal(exposition.sum('nucleus_model_load_time_seconds', { ...bert, backend: 'cpu' }), 1.5);
    assert.equal(exposition.value('nucleus_model_loaded', bert), 0);
    assert.equal(exposition.value('nucleus_model_events_total', { ...bert, event: 'unloaded' }), 1);
  });

  it('passes promtool check metrics where promtool is installed', async function () {
    const probe = spawnSync('promtool', ['--version'], { encoding: 'utf8' });
    if (probe.error) {
      console.log('      (promtool not installed: `apt-get install prometheus` to also check the exposition with it)');
      return this.skip();
    }
    const text = (await kit.request('/metrics')).body as string;
    const res = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
    assert.equal(res.status, 0, `promtool: ${res.stderr}${res.stdout}`);
  });
});

describe('metrics plugin config', () => {
  it('serves vLLM names with namespace "vllm", on a port of its own and a path of its choosing', async () => {
    const port = await freePort();
    const kit = await startTestKernel({
      plugins: [pluginDir('metrics')],
      config: { 'plugin.metrics': { namespace: 'vllm', port, path: '/prometheus', processMetrics: false } },
    });
    try {
      kit.kernel.events.emit('generation.end', {
        model: 'llama',
        requestId: 'x',
        promptTokens: 3,
        completionTokens: 2,
        ttftMs: 12,
        durationMs: 30,
        finishReason: 'stop',
        priority: 'normal',
      });
      const own = await fetch(`http://127.0.0.1:${port}/prometheus`);
      assert.equal(own.status, 200);
      const exposition = new Exposition(await own.text());
      assert.equal(exposition.count('vllm:time_to_first_token_seconds', { model_name: 'llama' }), 1);
      assert.equal(exposition.value('vllm:generation_tokens_total', { model_name: 'llama' }), 2);
      assert.equal(exposition.families.has('process_cpu_seconds_total'), false);
      assert.equal((await fetch(`http://127.0.0.1:${port}/metrics`)).status, 404);
      assert.equal((await kit.request('/prometheus')).status, 200);
      assert.equal((await kit.request('/metrics')).status, 404);
    } finally {
      await kit.stop();
    }
    await assert.rejects(fetch(`http://127.0.0.1:${port}/prometheus`), 'the own port closes with the plugin');
  });
});

describe('metrics plugin reload', () => {
  it('reloads cleanly: no metric registered twice, process metrics kept, states current', async () => {
    const ADMIN = 'admin-key-0123456789';
    const kit = await startTestKernel({ plugins: [pluginDir('metrics')], env: { NUCLEUS_ADMIN_KEY: ADMIN } });
    try {
      for (let i = 0; i < 3; i++) {
        const res = await kit.request('/admin/plugins/metrics/reload', {
          method: 'POST',
          headers: { authorization: `Bearer ${ADMIN}` },
        });
        assert.equal(res.status, 200, JSON.stringify(res.body));
      }
      const exposition = new Exposition((await kit.request('/metrics')).body as string);
      assert.ok(exposition.value('process_resident_memory_bytes') > 0);
      assert.equal(exposition.value('nucleus_plugin_state', { plugin: 'metrics', state: 'active' }), 1);
      assert.equal(kit.kernel.plugins.get('metrics').state, 'active');
    } finally {
      await kit.stop();
    }
  });
});

describe('metrics plugin GPU gauges', () => {
  let folder: string;
  let kit: TestKernel;
  const probes = globalThis as { fakeGpuProbes?: number; noGpuProbes?: number };
  before(async () => {
    folder = tempDir('gpu-metrics');
    // Two backends as a GPU plugin would contribute them: one with a device, one unusable on this machine.
    writePlugin(folder, {
      id: 'fake-gpu',
      activate: `
        const device = { id: 0, name: 'Fake GPU', vendor: 'nvidia', memoryTotalBytes: 1000, memoryFreeBytes: 250, utilizationPercent: 40 };
        ctx.contribute(ExtensionPoints.backend, { name: 'fakegpu', rank: -10, sessionOptions: () => ({ executionProviders: ['cpu'] }),
          probe: async () => { globalThis.fakeGpuProbes = (globalThis.fakeGpuProbes ?? 0) + 1; return { usable: true, devices: [device], executionProviders: ['cpu'] }; } });
        ctx.contribute(ExtensionPoints.backend, { name: 'nogpu', rank: -10, sessionOptions: () => ({ executionProviders: ['cpu'] }),
          probe: async () => { globalThis.noGpuProbes = (globalThis.noGpuProbes ?? 0) + 1; return { usable: false, reason: 'no driver', devices: [], executionProviders: [] }; } });`,
    });
    kit = await startTestKernel({
      plugins: [folder, pluginDir('metrics')],
      // Long enough that two scrapes in a row fall inside it even on a loaded machine.
      config: { 'plugin.metrics.deviceProbeIntervalS': 0.5 },
    });
    probes.fakeGpuProbes = 0;
    probes.noGpuProbes = 0;
  });
  after(async () => {
    await kit.stop();
    rmSync(folder, { recursive: true, force: true });
  });

  it('reads GPU memory and utilization from usable GPU backends at scrape time, at most once per interval', async () => {
    const first = new Exposition((await kit.request('/metrics')).body as string);
    const gpu = { backend: 'fakegpu', gpu: '0', gpu_name: 'Fake GPU' };
    assert.equal(first.value('nucleus_gpu_memory_used_bytes', gpu), 750);
    assert.equal(first.value('nucleus_gpu_memory_total_bytes', gpu), 1000);
    assert.equal(first.value('nucleus_gpu_utilization_perc', gpu), 0.4);
    await kit.request('/metrics');
    assert.equal(probes.fakeGpuProbes, 1, 'a second scrape within the interval does not probe again');
    await new Promise((r) => setTimeout(r, 600));
    await kit.request('/metrics');
    assert.equal(probes.fakeGpuProbes, 2);
    assert.equal(probes.noGpuProbes, 1, 'an unusable backend is probed once');
  });
});
