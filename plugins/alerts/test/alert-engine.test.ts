import assert from 'node:assert/strict';
import { AlertEngine, type AlertRule, Notifier, SignalWindows, webhookBody } from '@nucleus/plugin-alerts';
import type { AlertNotice, EventBus } from '@nucleus/sdk';
import { eventBus } from '@nucleus/sdk/testing';
import { type LogLine, recordingLogger } from '@nucleus/sdk/testing';

const rule = (over: Partial<AlertRule> = {}): AlertRule => ({
  name: 'SlowRequests',
  metric: 'latency_p50',
  op: '>',
  threshold: 100,
  windowS: 60,
  forS: 0,
  minSamples: 1,
  severity: 'warning',
  ...over,
});

interface Rig {
  bus: EventBus;
  engine: AlertEngine;
  notifier: Notifier;
  lines: LogLine[];
  fired: AlertNotice[];
  resolved: AlertNotice[];
  request(durationMs: number): void;
}

function rig(
  rules: AlertRule[],
  options: { cooldownS?: number; repeatIntervalS?: number; maxPerMinute?: number } = {},
): Rig {
  const bus = eventBus();
  const signals = new SignalWindows(120);
  signals.attach(bus);
  const logger = recordingLogger();
  const notifier = new Notifier(
    { log: true, webhooks: [], alertmanagers: [], maxPerMinute: options.maxPerMinute ?? 100, timeoutMs: 1000 },
    logger,
  );
  const engine = new AlertEngine(rules, signals, notifier, bus, {
    labels: { cluster: 'test' },
    repeatIntervalS: options.repeatIntervalS ?? 3600,
    cooldownS: options.cooldownS ?? 0,
    sendResolved: true,
  });
  const fired: AlertNotice[] = [];
  const resolved: AlertNotice[] = [];
  bus.on('alert.fired', (a) => fired.push(a));
  bus.on('alert.resolved', (a) => resolved.push(a));
  return {
    bus,
    engine,
    notifier,
    lines: logger.lines,
    fired,
    resolved,
    request: (durationMs) =>
      bus.emit('request.end', { requestId: 'r', method: 'GET', path: '/p', route: '/p', status: 200, durationMs }),
  };
}

describe('alerts: alert engine', () => {
  it('has no data before enough samples, then is ok while the condition does not hold', () => {
    const r = rig([rule({ minSamples: 3 })]);
    r.engine.evaluate();
    assert.equal(r.engine.status()[0]!.state, 'no_data');
    r.request(150);
    r.request(150);
    r.engine.evaluate();
    // Two samples breach the threshold, but two are below minSamples: no alert on too little traffic.
    assert.deepEqual(
      { state: r.engine.status()[0]!.state, samples: r.engine.status()[0]!.samples },
      { state: 'no_data', samples: 2 },
    );
    const quiet = rig([rule({ minSamples: 1 })]);
    quiet.request(20);
    quiet.engine.evaluate();
    assert.equal(quiet.engine.status()[0]!.state, 'ok');
    assert.equal(quiet.engine.status()[0]!.value, 20);
  });

  it('is pending until the condition has held forS, then fires once with a summary and labels', () => {
    const r = rig([rule({ forS: 2, model: undefined })]);
    r.request(250);
    const t0 = Date.now();
    r.engine.evaluate(t0);
    assert.equal(r.engine.status()[0]!.state, 'pending');
    assert.equal(r.engine.status()[0]!.since, new Date(t0).toISOString());
    r.engine.evaluate(t0 + 1999);
    assert.equal(r.fired.length, 0);
    r.engine.evaluate(t0 + 2000);
    assert.equal(r.engine.status()[0]!.state, 'firing');
    assert.equal(r.fired.length, 1);
    const alert = r.fired[0]!;
    assert.equal(alert.summary, 'latency_p50 is 250ms over the last 60s (threshold > 100ms)');
    assert.deepEqual(alert.labels, { cluster: 'test', metric: 'latency_p50' });
    assert.equal(alert.value, 250);
    assert.deepEqual(r.engine.firing(), [alert]);
    // Still firing: no second notice before repeatIntervalS.
    r.engine.evaluate(t0 + 3000);
    assert.equal(r.fired.length, 1);
    assert.equal(r.lines.filter((l) => l.level === 'warn').length, 1);
    assert.match(String(r.lines[0]!.msg), /^alert firing: latency_p50 is 250ms/);
  });

  it('resolves when the condition stops holding, and sends the resolution', () => {
    const r = rig([rule()]);
    r.request(500);
    const t0 = Date.now();
    r.engine.evaluate(t0);
    assert.equal(r.fired.length, 1);
    // The slow sample has left the window: nothing to judge any more, so the alert resolves.
    r.engine.evaluate(t0 + 61_000);
    assert.equal(r.resolved.length, 1);
    assert.equal(r.resolved[0]!.endsAt, new Date(t0 + 61_000).toISOString());
    assert.equal(r.resolved[0]!.startsAt, r.fired[0]!.startsAt);
    assert.equal(r.engine.status()[0]!.state, 'no_data');
    assert.deepEqual(r.engine.firing(), []);
    assert.ok(r.lines.some((l) => l.level === 'info' && l.msg === 'alert resolved: SlowRequests'));
  });

  it('a below-threshold rule fires on a low value, and a rule scoped to a model names it', () => {
    const r = rig([
      rule({ name: 'FewTokens', metric: 'token_rate', op: '<', threshold: 5, windowS: 10, model: 'llm' }),
    ]);
    r.bus.emit('generation.end', {
      model: 'llm',
      requestId: 'g',
      promptTokens: 1,
      completionTokens: 10,
      durationMs: 10,
      finishReason: 'stop',
      priority: 'normal',
    });
    r.engine.evaluate();
    assert.equal(r.fired.length, 1);
    assert.equal(
      r.fired[0]!.summary,
      'token_rate for model llm is 1 tokens/s over the last 10s (threshold < 5 tokens/s)',
    );
    assert.equal(r.fired[0]!.labels.model, 'llm');
  });

  it('waits out cooldownS after resolving before it fires again, and repeats a long-firing alert', () => {
    const r = rig([rule()], { cooldownS: 30, repeatIntervalS: 10 });
    r.request(500);
    const t0 = Date.now();
    r.engine.evaluate(t0);
    r.engine.evaluate(t0 + 10_000);
    // The repeat carries the same start time, not a new alert on the bus.
    assert.equal(r.fired.length, 1);
    assert.equal(r.lines.filter((l) => l.level === 'warn').length, 2);
    // Two fast requests bring the median under the threshold: resolved.
    r.request(20);
    r.request(20);
    r.engine.evaluate(t0 + 11_000);
    assert.equal(r.resolved.length, 1);
    for (let i = 0; i < 3; i++) r.request(500);
    r.engine.evaluate(t0 + 12_000);
    assert.equal(r.engine.status()[0]!.state, 'pending');
    r.engine.evaluate(t0 + 40_999);
    assert.equal(r.fired.length, 1);
    r.engine.evaluate(t0 + 41_000);
    assert.equal(r.fired.length, 2);
  });

  it('drops notifications over maxPerMinute, counts them and warns once', () => {
    const rules = ['A', 'B', 'C'].map((name) => rule({ name }));
    const r = rig(rules, { maxPerMinute: 2 });
    r.request(500);
    r.engine.evaluate();
    // All three fire on the bus; only two reach the log.
    assert.equal(r.fired.length, 3);
    assert.equal(r.notifier.suppressed, 1);
    const warnings = r.lines.filter((l) => l.level === 'warn').map((l) => l.msg);
    assert.deepEqual(warnings.filter((m) => m?.startsWith('alert firing')).length, 2);
    assert.ok(warnings.includes('alert notifications over the rate limit were dropped'));
  });

  it('the webhook body is in Alertmanager’s format, with labels shared by all alerts as common labels', () => {
    const r = rig([rule({ name: 'A' }), rule({ name: 'B', severity: 'critical' })]);
    r.request(500);
    r.engine.evaluate();
    const body = webhookBody(r.fired.map((alert) => ({ status: 'firing' as const, alert })));
    assert.equal(body.version, '4');
    assert.equal(body.status, 'firing');
    assert.equal(body.groupKey, '{}:{alertname=~"A|B"}');
    assert.deepEqual(body.commonLabels, { cluster: 'test', metric: 'latency_p50' });
    const alerts = body.alerts as Array<{ labels: Record<string, string>; endsAt: string; fingerprint: string }>;
    assert.deepEqual(alerts[1]!.labels, {
      alertname: 'B',
      severity: 'critical',
      cluster: 'test',
      metric: 'latency_p50',
    });
    assert.equal(alerts[0]!.endsAt, '0001-01-01T00:00:00Z');
    assert.match(alerts[0]!.fingerprint, /^[0-9a-f]{16}$/);
    assert.notEqual(alerts[0]!.fingerprint, alerts[1]!.fingerprint);
  });
});
