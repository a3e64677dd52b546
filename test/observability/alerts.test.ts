import { strict as assert } from 'node:assert';
import type { AlertNotice } from '@nucleus/sdk';
import { startTestKernel, type TestKernel } from '@nucleus/sdk/testing';
import WebSocket from 'ws';
import { pluginDir, Receiver, until } from './helpers.js';

/** Alertmanager's webhook body, as far as the tests read it. */
interface WebhookBody {
  version: string;
  status: 'firing' | 'resolved';
  receiver: string;
  commonLabels: Record<string, string>;
  alerts: Array<{
    status: string;
    labels: Record<string, string>;
    annotations: Record<string, string>;
    startsAt: string;
    endsAt: string;
    fingerprint: string;
  }>;
}

/** One alert as `POST /api/v2/alerts` takes it. */
interface PostableAlert {
  labels: Record<string, string>;
  annotations: Record<string, string>;
  startsAt: string;
  endsAt?: string;
}

interface AlertsStatus {
  rules: Array<{ name: string; state: string; value: number | null; samples: number }>;
  firing: AlertNotice[];
  suppressedNotifications: number;
}

describe('alerts plugin', () => {
  let receiver: Receiver;
  let kit: TestKernel;
  const status = async () => (await kit.request('/server/alerts')).body as AlertsStatus;
  const webhooks = () => receiver.on('/hook').map((r) => r.body as WebhookBody);
  const alertmanager = () => receiver.on('/am/api/v2/alerts').map((r) => r.body as PostableAlert[]);

  before(async () => {
    receiver = await Receiver.start();
    kit = await startTestKernel({
      plugins: [pluginDir('alerts')],
      config: {
        'plugin.alerts': {
          evaluateIntervalMs: 25,
          log: false,
          webhooks: [{ url: `${receiver.url}/hook`, headers: { authorization: 'Bearer hook-secret' } }],
          alertmanagers: [{ url: `${receiver.url}/am` }],
          labels: { instance: 'test-1' },
          cooldownS: 0,
          rules: [
            {
              name: 'SlowResnet',
              metric: 'latency_p99',
              model: 'resnet',
              threshold: 100,
              windowS: 1,
              minSamples: 3,
              severity: 'critical',
            },
            { name: 'FailingRequests', metric: 'error_rate', threshold: 0.5, windowS: 60, minSamples: 4 },
            { name: 'NoTokens', metric: 'token_rate', op: '<', threshold: 1, windowS: 60, minSamples: 0, forS: 3600 },
          ],
        },
      },
    });
  });
  after(async () => {
    await kit.stop();
    await receiver.close();
  });

  it('fires a latency alert from events over its window and sends it to the webhook and Alertmanager', async () => {
    const ws = new WebSocket(`${kit.url.replace('http', 'ws')}/ws`);
    const frames: Array<{ type: string; event?: string; data?: AlertNotice }> = [];
    ws.on('message', (raw) => frames.push(JSON.parse(raw.toString())));
    await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
    ws.send(JSON.stringify({ type: 'subscribe', topics: ['alerts'] }));
    await until(() => frames.some((f) => f.type === 'subscribed'), 'the alerts topic');
    try {
      for (const ms of [20, 30, 400])
        kit.kernel.events.emit('inference.end', {
          model: 'resnet',
          version: '1',
          batchSize: 1,
          queueMs: 0,
          computeMs: ms,
          ok: true,
        });
      await until(() => webhooks().length > 0 && alertmanager().length > 0, 'the notifications');
      const hook = webhooks()[0]!;
      assert.equal(hook.version, '4');
      assert.equal(hook.status, 'firing');
      assert.equal(receiver.on('/hook')[0]!.headers.authorization, 'Bearer hook-secret');
      assert.deepEqual(hook.alerts[0]!.labels, {
        alertname: 'SlowResnet',
        severity: 'critical',
        instance: 'test-1',
        metric: 'latency_p99',
        model: 'resnet',
      });
      assert.match(
        hook.alerts[0]!.annotations.summary!,
        /latency_p99 for model resnet is 400ms over the last 1s \(threshold > 100ms\)/,
      );
      assert.match(hook.alerts[0]!.fingerprint, /^[0-9a-f]{16}$/);
      const am = alertmanager()[0]!;
      assert.equal(am.length, 1);
      assert.equal(am[0]!.labels.alertname, 'SlowResnet');
      assert.equal(am[0]!.endsAt, undefined);
      assert.ok(Date.parse(am[0]!.startsAt) > 0);
      await until(() => frames.some((f) => f.event === 'alert.fired'), 'alert.fired on /ws');
      const s = await status();
      assert.deepEqual(
        s.firing.map((a) => a.name),
        ['SlowResnet'],
      );
      assert.equal(s.rules.find((r) => r.name === 'SlowResnet')!.state, 'firing');
      assert.equal(
        s.rules.find((r) => r.name === 'NoTokens')!.state,
        'pending',
        'below threshold but not for forS yet',
      );
      assert.equal(s.rules.find((r) => r.name === 'FailingRequests')!.state, 'no_data');

      // The window is 1 s: once the slow samples age out, the alert resolves, with an end time.
      await until(() => webhooks().some((b) => b.status === 'resolved'), 'the resolution', 4000);
      const resolved = webhooks().find((b) => b.status === 'resolved')!.alerts[0]!;
      assert.equal(resolved.status, 'resolved');
      assert.ok(Date.parse(resolved.endsAt) >= Date.parse(resolved.startsAt));
      await until(() => alertmanager().some((a) => a[0]!.endsAt !== undefined), 'the resolution sent to Alertmanager');
      await until(() => frames.some((f) => f.event === 'alert.resolved'), 'alert.resolved on /ws');
      assert.deepEqual((await status()).firing, []);
    } finally {
      ws.close();
    }
  });

  it('fires an error-rate alert from real HTTP responses', async () => {
    for (let i = 0; i < 4; i++) assert.equal((await kit.request('/nope')).status, 404);
    // 404s are client errors: no alert.
    await new Promise((r) => setTimeout(r, 100));
    assert.equal((await status()).rules.find((r) => r.name === 'FailingRequests')!.state, 'ok');
    for (let i = 0; i < 10; i++) {
      kit.kernel.events.emit('request.end', {
        requestId: `x${i}`,
        method: 'POST',
        path: '/v1/x',
        route: '/v1/x',
        status: 503,
        durationMs: 1,
        errorCode: 'overloaded',
      });
    }
    await until(
      () => webhooks().some((b) => b.alerts.some((a) => a.labels.alertname === 'FailingRequests')),
      'the error-rate alert',
    );
    const rule = (await status()).rules.find((r) => r.name === 'FailingRequests')!;
    assert.equal(rule.state, 'firing');
    assert.ok(rule.value! > 0.5);
  });
});

describe('alerts plugin rate limiting', () => {
  it('sends at most maxNotificationsPerMinute alerts and counts the rest', async () => {
    const receiver = await Receiver.start();
    const rules = Array.from({ length: 8 }, (_, i) => ({ name: `Memory${i}`, metric: 'rss_bytes', threshold: 1 }));
    const kit = await startTestKernel({
      plugins: [pluginDir('alerts')],
      config: {
        'plugin.alerts': {
          evaluateIntervalMs: 20,
          log: false,
          maxNotificationsPerMinute: 3,
          repeatIntervalS: 1,
          webhooks: [{ url: `${receiver.url}/hook` }],
          rules,
        },
      },
    });
    try {
      await until(() => receiver.on('/hook').length > 0, 'the first notification');
      await new Promise((r) => setTimeout(r, 1200));
      const sent = receiver.on('/hook').flatMap((r) => (r.body as WebhookBody).alerts);
      assert.equal(sent.length, 3, 'a storm of 8 alerts (and their repeats) is cut to 3 a minute');
      const s = (await kit.request('/server/alerts')).body as AlertsStatus;
      assert.equal(s.firing.length, 8, 'every rule still fires; only notifications are limited');
      assert.ok(s.suppressedNotifications >= 5 + 8, 'the first 5 and the repeats after 1 s were dropped');
      assert.ok(
        s.rules.every((r) => r.value! > 1e6),
        'memory is measured in bytes',
      );
    } finally {
      await kit.stop();
      await receiver.close();
    }
  });

  it('refuses two rules with one name, failing the plugin and nothing else', async () => {
    const kit = await startTestKernel({
      plugins: [pluginDir('alerts')],
      config: {
        'plugin.alerts.rules': [
          { name: 'Twice', metric: 'rss_bytes', threshold: 1 },
          { name: 'Twice', metric: 'heap_used_bytes', threshold: 1 },
        ],
      },
    });
    try {
      const info = kit.kernel.plugins.get('alerts');
      assert.equal(info.state, 'failed');
      assert.match(info.error ?? '', /two rules are named "Twice"/);
      assert.equal((await kit.request('/health')).status, 200);
    } finally {
      await kit.stop();
    }
  });
});
