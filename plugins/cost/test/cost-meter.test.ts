import assert from 'node:assert/strict';
import type { AlertNotice } from '@nucleus/sdk';
import { eventBus } from '@nucleus/sdk/testing';
import { BudgetWatch, CostMeter, type UsageReading } from '@nucleus/plugin-cost';

const GB = 1024 ** 3;
const prices = { cpuCoreHour: 3600, gpuHour: 7200, memoryGbHour: 36, currency: 'EUR' };

/** A meter whose process readings the test sets. */
function meterWith(readings: UsageReading[]): CostMeter {
  let i = 0;
  return new CostMeter(prices, () => readings[Math.min(i++, readings.length - 1)]!);
}

describe('CostMeter: measured process use split over the requests that finished', () => {
  it('splits CPU and memory by worker time, and charges accelerator time to its own request', () => {
    const meter = meterWith([
      { cpuMicros: 0, rssBytes: GB, atMs: 0 },
      { cpuMicros: 4_000_000, rssBytes: 2 * GB, atMs: 2000 },
    ]);
    meter.record({ model: 'heavy', key: 'bob', workerMs: 30, deviceMs: 0 });
    meter.record({ model: 'light', key: 'alice', workerMs: 10, deviceMs: 0 });
    meter.record({ model: 'gpu', workerMs: 0, deviceMs: 500 });
    const byModel = Object.fromEntries(meter.settle().map((a) => [a.model, a]));
    assert.equal(byModel.heavy!.cpuSeconds, 3, '30 of the 40 worker ms: 3 of the 4 CPU seconds');
    assert.equal(byModel.light!.cpuSeconds, 1);
    assert.equal(byModel.gpu!.cpuSeconds, 0);
    assert.equal(byModel.heavy!.memoryGbSeconds, 3, '2 GB for 2 s, three quarters');
    assert.equal(byModel.gpu!.deviceSeconds, 0.5);
    // Prices are per hour: 3600 per core-hour is 1 per core-second.
    assert.equal(byModel.heavy!.cost, 3 + 3 * 0.01);
    assert.equal(byModel.gpu!.cost, 0.5 * 2);
    assert.deepEqual([byModel.heavy!.key, byModel.light!.key, byModel.gpu!.key], ['bob', 'alice', undefined]);
    assert.equal(byModel.heavy!.currency, 'EUR');
  });

  it('groups by model and key, counts requests, and keeps use without requests as unattributed', () => {
    const meter = meterWith([
      { cpuMicros: 0, rssBytes: GB, atMs: 0 },
      { cpuMicros: 1_000_000, rssBytes: GB, atMs: 1000 },
      { cpuMicros: 3_000_000, rssBytes: GB, atMs: 2000 },
    ]);
    assert.deepEqual(meter.settle(), [], 'nobody to charge');
    assert.equal(meter.unattributed.cpuSeconds, 1);
    assert.equal(meter.unattributed.memoryGbSeconds, 1);
    for (let i = 0; i < 3; i++) meter.record({ model: 'm', key: 'k', workerMs: 5, deviceMs: 0 });
    meter.record({ model: 'm', workerMs: 5, deviceMs: 0 });
    const accruals = meter.settle();
    assert.deepEqual(
      accruals.map((a) => [a.key, a.requests, a.cpuSeconds]),
      [
        ['k', 3, 1.5],
        [undefined, 1, 0.5],
      ],
    );
  });

  it('shares equally between requests that took no measurable worker time', () => {
    const meter = meterWith([
      { cpuMicros: 0, rssBytes: 0, atMs: 0 },
      { cpuMicros: 2_000_000, rssBytes: 0, atMs: 1 },
    ]);
    meter.record({ model: 'a', workerMs: 0, deviceMs: 0 });
    meter.record({ model: 'b', workerMs: 0, deviceMs: 0 });
    assert.deepEqual(
      meter.settle().map((a) => a.cpuSeconds),
      [1, 1],
    );
  });
});

describe('BudgetWatch: spending per calendar period against budgets', () => {
  const accrual = (cost: number, key?: string, model = 'm') => ({
    model,
    ...(key !== undefined && { key }),
    requests: 1,
    cpuSeconds: 0,
    deviceSeconds: 0,
    memoryGbSeconds: 0,
    cost,
    currency: 'USD',
  });

  it('fires once when a key passes its daily budget, and resolves at the next day', () => {
    const events = eventBus();
    const fired: AlertNotice[] = [];
    const resolved: AlertNotice[] = [];
    events.on('alert.fired', (a) => fired.push(a));
    events.on('alert.resolved', (a) => resolved.push(a));
    let now = new Date('2024-05-17T10:00:00Z');
    const watch = new BudgetWatch(
      [
        { name: 'BobDaily', key: 'bob', period: 'day', amount: 1, severity: 'warning' },
        { name: 'HeavyMonthly', model: 'heavy', period: 'month', amount: 100, severity: 'critical' },
      ],
      events,
      'USD',
      () => now,
    );
    watch.add([accrual(0.6, 'bob'), accrual(5, 'alice')]);
    assert.equal(fired.length, 0, 'alice is not under the budget; bob is under it');
    watch.add([accrual(0.6, 'bob', 'heavy')]);
    assert.equal(fired.length, 1);
    assert.equal(fired[0]!.name, 'BobDaily');
    assert.equal(fired[0]!.labels.key, 'bob');
    assert.equal(fired[0]!.threshold, 1);
    assert.ok(Math.abs(fired[0]!.value - 1.2) < 1e-9);
    assert.match(fired[0]!.summary, /key "bob" spent 1\.2\d* USD this day \(2024-05-17\), over the budget of 1 USD/);
    watch.add([accrual(1, 'bob')]);
    assert.equal(fired.length, 1, 'not again in the same period');
    const [bob, heavy] = watch.status();
    assert.equal(bob!.firing, true);
    assert.equal(heavy!.firing, false);
    assert.equal(heavy!.spent, 0.6);
    now = new Date('2024-05-18T00:00:01Z');
    watch.add([accrual(0.1, 'bob')]);
    assert.equal(resolved.length, 1);
    assert.equal(resolved[0]!.endsAt, now.toISOString());
    assert.deepEqual(
      watch.status().map((s) => [s.periodStart, s.firing]),
      [
        ['2024-05-18', false],
        ['2024-05', false],
      ],
    );
    assert.ok(Math.abs(watch.status()[0]!.spent - 0.1) < 1e-9, 'a new day starts from zero');
  });
});
