import { strict as assert } from 'node:assert';
import type { AlertNotice, DriftReport } from '@nucleus/sdk';
import { SeededRandom } from '@nucleus/sdk';
import { startTestKernel, type TestKernel } from '@nucleus/sdk/testing';
import { API_KSERVE } from '../api-kserve/kserve-fixtures.js';
import { Exposition, pluginDir, Receiver, until } from '../observability/helpers.js';

interface DriftStatus {
  reference: { source: string };
  window: number;
  latest?: DriftReport;
  totals: { rows: number; missing: number; nan: number; outOfRange: number };
}

describe('model-insight: drift of the built-in tabular model, alerted through the alerts plugin', () => {
  let receiver: Receiver;
  let kit: TestKernel;
  const rng = new SeededRandom(11);
  const batch = (shift: number) =>
    Array.from({ length: 50 }, () => Array.from({ length: 8 }, (_, j) => rng.normal(1) + (j === 2 ? shift : 0)));
  const send = async (rows: number[][]) => {
    const res = await kit.request('/v2/models/tabular-classifier/infer', {
      body: { inputs: [{ name: 'features', shape: [rows.length, 8], datatype: 'FP32', data: rows.flat() }] },
    });
    assert.equal(res.status, 200, JSON.stringify(res.body));
  };
  const drift = async () => (await kit.request('/v2/models/tabular-classifier/drift')).body as DriftStatus;
  const fired = () =>
    receiver
      .on('/hook')
      .flatMap((r) => (r.body as { alerts: Array<{ status: string; labels: Record<string, string> }> }).alerts)
      .filter((a) => a.labels.alertname === 'TabularDrift' && a.status === 'firing');

  before(async () => {
    receiver = await Receiver.start();
    kit = await startTestKernel({
      plugins: [API_KSERVE, pluginDir('model-insight'), pluginDir('alerts'), pluginDir('metrics'), pluginDir('stats')],
      config: {
        'plugin.model-insight': { drift: { windowSize: 200, minSamples: 200, evaluateIntervalMs: 20 } },
        'plugin.alerts': {
          evaluateIntervalMs: 20,
          log: false,
          cooldownS: 0,
          webhooks: [{ url: `${receiver.url}/hook` }],
          rules: [
            {
              name: 'TabularDrift',
              metric: 'drift_psi',
              model: 'tabular-classifier',
              op: '>',
              threshold: 0.25,
              windowS: 60,
              minSamples: 200,
            },
          ],
        },
      },
    });
  });
  after(async () => {
    await kit.stop();
    await receiver.close();
  });

  it('measures an unshifted window as stable and does not alert', async () => {
    for (let i = 0; i < 4; i++) await send(batch(0));
    let status = await drift();
    for (let i = 0; i < 200 && !(status.latest?.samples === 200); i++) {
      await new Promise((r) => setTimeout(r, 20));
      status = await drift();
    }
    assert.equal(status.reference.source, 'training');
    assert.equal(status.latest?.samples, 200, JSON.stringify(status));
    assert.ok(status.latest!.maxPsi < 0.25, JSON.stringify(status.latest));
    assert.ok(status.latest!.maxKs < 0.15, JSON.stringify(status.latest));
    // Let the rule see the report a few times.
    let rules: Array<{ name: string; state: string }> = [];
    for (let i = 0; i < 200; i++) {
      rules = ((await kit.request('/server/alerts')).body as { rules: typeof rules }).rules;
      if (rules[0]?.state === 'ok') break;
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.equal(rules[0]?.state, 'ok', JSON.stringify(rules));
    assert.equal(fired().length, 0);
  });

  it('fires the drift rule once one feature shifts, and exports the figures', async () => {
    // One request of 200 rows: the window turns from unshifted to shifted at once, so no report (read below) measures
    // a window half of each, as one evaluated between four requests of 50 could.
    await send(Array.from({ length: 4 }, () => batch(2)).flat());
    await until(() => fired().length > 0, 'the TabularDrift webhook', 10_000);
    const status = await drift();
    const shifted = status.latest!.features.find((f) => f.name === 'debt_ratio')!;
    assert.ok(shifted.psi > 1, JSON.stringify(shifted));
    assert.ok(shifted.ks > 0.5, JSON.stringify(shifted));
    const others = status.latest!.features.filter((f) => f.name !== 'debt_ratio');
    assert.ok(
      others.every((f) => f.psi < 0.25),
      JSON.stringify(others),
    );
    const firing = ((await kit.request('/server/alerts')).body as { firing: AlertNotice[] }).firing;
    assert.equal(firing[0]?.name, 'TabularDrift');

    const metrics = new Exposition((await kit.request('/metrics')).body as string);
    assert.ok(
      metrics.value('nucleus_feature_drift_psi', { model_name: 'tabular-classifier', feature: 'debt_ratio' }) > 1,
    );
    const stats = (await kit.request('/server/stats')).body as { drift?: DriftReport[] };
    assert.equal(stats.drift?.[0]?.model, 'tabular-classifier');
  });
});
