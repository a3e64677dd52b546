import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startTestKernel, type TestKernel } from '@nucleus/sdk/testing';

const PLUGINS = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const plugin = (id: string): string => join(PLUGINS, id);
const KEYS = {
  alice: 'alice-key-cost-0001',
  bob: 'bob-key-cost-00002',
  carol: 'carol-key-cost-003',
  dave: 'dave-key-cost-0004',
};

interface Row {
  model?: string;
  key?: string;
  requests: number;
  cost: number;
  cpuSeconds: number;
}
interface CostReport {
  currency: string;
  total: Row;
  byModel: Row[];
  byKey: Row[];
  byModelAndKey: Row[];
  budgets: Array<{ name: string; spent: number; firing: boolean }>;
}

// Each image differs from the last (its first value counts up), so every request runs the model: a prediction-cache
// hit would cost next to nothing and blur the comparison.
let drawn = 0;
const image = (rows: number): number[] => {
  drawn++;
  return Array.from({ length: rows * 3 * 224 * 224 }, (_, i) => (i === 0 ? drawn / 1e4 : ((i * 7) % 13) / 13));
};

describe('cost plugin: cost per inference by model and key, from measured use, with budgets', () => {
  let kit: TestKernel;
  let hooks: Server;
  const alerts: Array<{ status: string; alerts: Array<{ labels: Record<string, string> }> }> = [];

  before(async () => {
    hooks = createServer((req, res) => {
      let body = '';
      req.on('data', (c) => (body += c));
      req.on('end', () => {
        alerts.push(JSON.parse(body));
        res.end();
      });
    });
    await new Promise<void>((r) => hooks.listen(0, '127.0.0.1', r));
    kit = await startTestKernel({
      plugins: ['api-kserve', 'metrics', 'stats', 'alerts', 'cost'].map(plugin),
      config: {
        'auth.keys': Object.entries(KEYS).map(([name, key]) => ({ name, key, role: 'user' })),
        // Only the route settles, so each test's requests are split in one interval.
        'plugin.cost.settleIntervalMs': 600_000,
        'plugin.cost.budgets': [
          { name: 'BobDaily', key: 'bob', amount: 1e-12, severity: 'critical' },
          { name: 'AliceDaily', key: 'alice', amount: 1000 },
        ],
        'plugin.alerts.rules': [],
        'plugin.alerts.log': false,
        'plugin.alerts.webhooks': [{ url: `http://127.0.0.1:${(hooks.address() as AddressInfo).port}/` }],
      },
    });
  });
  after(async () => {
    await kit?.stop();
    hooks?.close();
  });

  const infer = (model: string, key: keyof typeof KEYS, shape: number[], data: number[]) =>
    kit.request(`/v2/models/${model}/infer`, {
      body: { inputs: [{ name: 'input', shape, datatype: 'FP32', data }] },
      headers: { authorization: `Bearer ${KEYS[key]}` },
    });
  const report = async (): Promise<CostReport> => {
    const res = await kit.request('/server/cost', { headers: { authorization: `Bearer ${KEYS.alice}` } });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    return res.body as CostReport;
  };
  const pair = (r: CostReport, model: string, key: string) =>
    r.byModelAndKey.find((p) => p.model === model && p.key === key) ?? { requests: 0, cost: 0, cpuSeconds: 0 };
  /**
   * The worker time each key's requests took, as the engine reports it (`inference.end`) while `run` runs: what the
   * plugin splits the process's measured use by. Wall time of tiny runs is noisy on a busy machine, so the tests
   * check the split against these figures rather than against an expectation of which run is slower.
   */
  const workBy = async (run: () => Promise<void>): Promise<Map<string, number>> => {
    const byRequest = new Map<string, number>();
    const off = kit.kernel.events.on('inference.end', (e) => {
      if (e.batchSize > 0 && e.requestId) byRequest.set(e.requestId, e.computeMs / e.batchSize);
    });
    const keyOf = new Map<string, string>();
    const offStart = kit.kernel.events.on('request.start', (e) => {
      if (e.key) keyOf.set(e.requestId, e.key);
    });
    try {
      await run();
    } finally {
      off();
      offStart();
    }
    const work = new Map<string, number>();
    for (const [id, ms] of byRequest) {
      const key = keyOf.get(id);
      if (key) work.set(key, (work.get(key) ?? 0) + ms);
    }
    return work;
  };
  const assertSplitBy = (costs: Record<string, number>, work: Map<string, number>) => {
    const [a, b] = Object.keys(costs) as [string, string];
    const measured = costs[a]! / costs[b]!;
    const expected = work.get(a)! / work.get(b)!;
    assert.ok(
      Math.abs(measured - expected) <= 1e-6 * expected,
      `cost ${a}/${b} = ${measured}, their worker time ${a}/${b} = ${expected}`,
    );
  };

  it('splits the measured use between two models by their worker time, each to the key that sent it', async () => {
    // Models open on first use: open them first, so loading is not in the measured interval.
    assert.equal((await infer('mlp-classifier', 'carol', [1, 4], [0, 0, 0, 0])).status, 200);
    assert.equal((await infer('resnet-tiny', 'carol', [1, 3, 224, 224], image(1))).status, 200);
    const before = await report();
    const work = await workBy(async () => {
      for (let i = 0; i < 6; i++) {
        assert.equal((await infer('mlp-classifier', 'alice', [1, 4], [0.1, 0.2, 0.3, 0.4])).status, 200);
        assert.equal((await infer('resnet-tiny', 'bob', [2, 3, 224, 224], image(2))).status, 200);
      }
    });
    const after = await report();
    const light = pair(after, 'mlp-classifier', 'alice');
    const heavy = pair(after, 'resnet-tiny', 'bob');
    assert.equal(light.requests - pair(before, 'mlp-classifier', 'alice').requests, 6);
    assert.equal(heavy.requests - pair(before, 'resnet-tiny', 'bob').requests, 6);
    const lightCost = light.cost - pair(before, 'mlp-classifier', 'alice').cost;
    const heavyCost = heavy.cost - pair(before, 'resnet-tiny', 'bob').cost;
    assert.ok(lightCost > 0, 'every request costs something');
    // One settlement: the use is split in proportion to the worker time each key's requests took.
    assertSplitBy({ bob: heavyCost, alice: lightCost }, work);
    assert.ok(heavy.cpuSeconds > 0);
    assert.deepEqual(
      after.byKey.map((k) => k.key).filter((k) => k === 'alice' || k === 'bob'),
      ['alice', 'bob'],
    );
    assert.equal(after.currency, 'USD');
  });

  it('splits it between requests of one and two rows by their worker time, on the same model', async () => {
    const before = await report();
    const work = await workBy(async () => {
      for (let i = 0; i < 4; i++) {
        assert.equal((await infer('resnet-tiny', 'carol', [1, 3, 224, 224], image(1))).status, 200);
        assert.equal((await infer('resnet-tiny', 'dave', [2, 3, 224, 224], image(2))).status, 200);
      }
    });
    const after = await report();
    const one = pair(after, 'resnet-tiny', 'carol').cost - pair(before, 'resnet-tiny', 'carol').cost;
    const two = pair(after, 'resnet-tiny', 'dave').cost - pair(before, 'resnet-tiny', 'dave').cost;
    assert.ok(one > 0 && two > 0);
    assertSplitBy({ dave: two, carol: one }, work);
  });

  it('shows the cost in /server/stats and as counters in /metrics', async () => {
    await report();
    const stats = (await kit.request('/server/stats', { headers: { authorization: `Bearer ${KEYS.alice}` } })).body as {
      cost?: { total: number; byModel: Row[]; byKey: Row[] };
    };
    assert.ok(stats.cost, 'a cost section');
    assert.ok(stats.cost.total > 0);
    assert.ok(stats.cost.byModel.some((m) => m.model === 'resnet-tiny' && m.cost > 0));
    assert.ok(stats.cost.byKey.some((k) => k.key === 'dave' && k.cost > 0));
    const text = (await kit.request('/metrics')).body as string;
    const line = text
      .split('\n')
      .find(
        (l) =>
          l.startsWith('nucleus_inference_cost_total{') &&
          l.includes('model_name="resnet-tiny"') &&
          l.includes('key="bob"'),
      );
    assert.ok(
      line,
      `a cost counter for resnet-tiny and bob: ${text
        .split('\n')
        .filter((l) => l.includes('cost'))
        .join('\n')}`,
    );
    assert.ok(Number(line.split(' ').at(-1)) > 0);
    assert.match(text, /nucleus_inference_cpu_seconds_total\{model_name="mlp-classifier",key="alice"\} [0-9.e-]+/);
  });

  it('raises an alert through the alerts plugin when a key passes its budget, and not for one under it', async () => {
    const r = await report();
    const bob = r.budgets.find((b) => b.name === 'BobDaily')!;
    const alice = r.budgets.find((b) => b.name === 'AliceDaily')!;
    assert.equal(bob.firing, true);
    assert.ok(bob.spent > 1e-12);
    assert.equal(alice.firing, false);
    for (let i = 0; i < 100 && alerts.length === 0; i++) await new Promise((res) => setTimeout(res, 20));
    const sent = alerts.flatMap((a) => a.alerts.map((x) => x.labels));
    assert.ok(
      sent.some((l) => l.alertname === 'BobDaily' && l.key === 'bob'),
      `a webhook notice for BobDaily: ${JSON.stringify(sent)}`,
    );
    assert.ok(!sent.some((l) => l.alertname === 'AliceDaily'));
  });
});
