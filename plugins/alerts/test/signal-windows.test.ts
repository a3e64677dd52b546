import assert from 'node:assert/strict';
import { SignalWindows } from '@nucleus/plugin-alerts';
import { eventBus } from '@nucleus/sdk/testing';

const requestEnd = (route: string, status: number, durationMs: number) => ({
  requestId: `r-${Math.random()}`,
  method: 'POST',
  path: route,
  route,
  status,
  durationMs,
});

describe('alerts: signal windows', () => {
  it('measures HTTP latency percentiles and the 5xx share, overall and per endpoint', () => {
    const bus = eventBus();
    const signals = new SignalWindows(60);
    signals.attach(bus);
    for (let i = 1; i <= 10; i++) bus.emit('request.end', requestEnd('/v1/a', i === 10 ? 503 : 200, i * 10));
    bus.emit('request.end', requestEnd('/v1/b', 404, 1000));
    const now = Date.now();
    const all = signals.measure({ metric: 'latency_p50', windowS: 60 }, now);
    assert.equal(all?.samples, 11);
    assert.equal(signals.measure({ metric: 'latency_p99', windowS: 60, endpoint: '/v1/a' }, now)?.value, 100);
    // A 4xx is the client's error, not the server's.
    assert.deepEqual(signals.measure({ metric: 'error_rate', windowS: 60 }, now), { value: 1 / 11, samples: 11 });
    assert.deepEqual(signals.measure({ metric: 'error_rate', windowS: 60, endpoint: '/v1/b' }, now), {
      value: 0,
      samples: 1,
    });
    assert.deepEqual(signals.measure({ metric: 'request_rate', windowS: 10, endpoint: '/v1/a' }, now), {
      value: 1,
      samples: 10,
    });
  });

  it('has no measurement for an endpoint or model never seen, so a rule on it has no data', () => {
    const signals = new SignalWindows(60);
    signals.attach(eventBus());
    assert.equal(signals.measure({ metric: 'latency_p95', windowS: 60, endpoint: '/nowhere' }), undefined);
    assert.equal(signals.measure({ metric: 'error_rate', windowS: 60, model: 'ghost' }), undefined);
    assert.deepEqual(signals.measure({ metric: 'token_rate', windowS: 60, model: 'ghost' }), { value: 0, samples: 0 });
  });

  it('counts generated tokens once, whether they arrive streamed or only at the end', () => {
    const bus = eventBus();
    const signals = new SignalWindows(60);
    signals.attach(bus);
    const base = { model: 'llm', priority: 'normal' as const, promptTokens: 3, durationMs: 40 };
    bus.emit('generation.tokens', { model: 'llm', requestId: 'g1', tokens: 4, totalTokens: 4 });
    bus.emit('generation.tokens', { model: 'llm', requestId: 'g1', tokens: 2, totalTokens: 6 });
    bus.emit('generation.end', { ...base, requestId: 'g1', completionTokens: 6, finishReason: 'stop', ttftMs: 5 });
    // Not streamed: all its tokens come with the end.
    bus.emit('generation.end', { ...base, requestId: 'g2', completionTokens: 4, finishReason: 'error', ttftMs: 9 });
    const now = Date.now();
    assert.deepEqual(signals.measure({ metric: 'token_rate', windowS: 10, model: 'llm' }, now), {
      value: 1,
      samples: 10,
    });
    assert.deepEqual(signals.measure({ metric: 'error_rate', windowS: 60, model: 'llm' }, now), {
      value: 0.5,
      samples: 2,
    });
    assert.equal(signals.measure({ metric: 'ttft_p95', windowS: 60 }, now)?.value, 9);
    assert.deepEqual(signals.measure({ metric: 'inference_rate', windowS: 1 }, now), { value: 2, samples: 2 });
  });

  it('sums queue depths over priorities, per model or for all, as a gauge read now', () => {
    const bus = eventBus();
    const signals = new SignalWindows(60);
    signals.attach(bus);
    bus.emit('queue.depth', { model: 'a', priority: 'high', depth: 2 });
    bus.emit('queue.depth', { model: 'a', priority: 'low', depth: 3 });
    bus.emit('queue.depth', { model: 'b', priority: 'normal', depth: 7 });
    bus.emit('queue.depth', { model: 'a', priority: 'high', depth: 1 });
    assert.deepEqual(signals.measure({ metric: 'queue_depth', windowS: 60, model: 'a' }), {
      value: 4,
      samples: Infinity,
    });
    assert.equal(signals.measure({ metric: 'queue_depth', windowS: 60 })?.value, 11);
  });

  it('forgets samples older than the window, and stops listening once detached', () => {
    const bus = eventBus();
    const signals = new SignalWindows(60);
    const detach = signals.attach(bus);
    bus.emit('request.end', requestEnd('/x', 200, 5));
    const later = Date.now() + 61_000;
    assert.equal(signals.measure({ metric: 'latency_p50', windowS: 60 }, later)?.samples, 0);
    detach();
    bus.emit('request.end', requestEnd('/x', 200, 5));
    assert.equal(signals.measure({ metric: 'latency_p50', windowS: 60 })?.samples, 1);
  });
});
