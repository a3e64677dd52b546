import { strict as assert } from 'node:assert';
import type { Contribution } from '@nucleus/sdk';
import { ActivationLease } from '@nucleus/core/internal/kernel/activation-lease';
import { TypedEventBus } from '@nucleus/core/internal/kernel/event-bus';
import { ExtensionRegistry } from '@nucleus/core/internal/kernel/extension-registry';

function contribution(name: string, pluginId: string, priority = 0): Contribution<unknown> {
  return { value: { name }, name, priority, pluginId, pluginVersion: '1.0.0' };
}

describe('extension points', () => {
  it('orders contributions by priority, then by arrival, and finds them by name', () => {
    const registry = new ExtensionRegistry(new TypedEventBus());
    registry.commit(undefined, new ActivationLease(), [
      { pointId: 'backend', contribution: contribution('cpu', 'a', 0) },
      { pointId: 'backend', contribution: contribution('cuda', 'b', 10) },
      { pointId: 'backend', contribution: contribution('rocm', 'c', 0) },
    ]);
    const point = registry.point('backend');
    assert.deepEqual(
      point.list().map((c) => c.name),
      ['cuda', 'cpu', 'rocm'],
    );
    assert.equal(point.first()?.name, 'cuda');
    assert.equal(point.find('rocm')?.pluginId, 'c');
  });

  it('swaps one owner for another across points in one step, then announces it', () => {
    const events = new TypedEventBus();
    const registry = new ExtensionRegistry(events);
    const v1 = new ActivationLease();
    registry.commit(undefined, v1, [
      { pointId: 'routes', contribution: contribution('r', 'p') },
      { pointId: 'hooks', contribution: contribution('h', 'p') },
    ]);
    const seen: string[] = [];
    // While listeners run, both points must already show the new state.
    events.on('extension.changed', (e) => {
      seen.push(
        `${e.change}:${e.point}:${registry.point('routes').list().length}${registry.point('hooks').list().length}`,
      );
    });
    const v2 = new ActivationLease();
    registry.commit(v1, v2, [{ pointId: 'routes', contribution: contribution('r2', 'p') }]);
    assert.deepEqual(
      registry
        .point('routes')
        .list()
        .map((c) => c.name),
      ['r2'],
    );
    assert.deepEqual(registry.point('hooks').list(), []);
    assert.deepEqual(seen.sort(), ['added:routes:10', 'removed:hooks:10', 'removed:routes:10']);
  });

  it('holds the owner lease while a contribution is in use, even after it was swapped out', async () => {
    const registry = new ExtensionRegistry(new TypedEventBus());
    const lease = new ActivationLease();
    registry.commit(undefined, lease, [{ pointId: 'hooks', contribution: contribution('h', 'p') }]);
    const point = registry.point('hooks');
    let release!: () => void;
    const inUse = point.use(point.first()!, () => new Promise<string>((r) => (release = () => r('done'))));
    registry.commit(lease, undefined, []);
    assert.equal(lease.active, 1);
    assert.equal(await lease.drained(20), false, 'must not drain while the use is in flight');
    const drained = lease.drained(1000);
    release();
    assert.equal(await inUse, 'done');
    assert.equal(await drained, true);
  });

  it('keeps delivering events when a listener throws', () => {
    const bus = new TypedEventBus();
    const got: string[] = [];
    bus.on('config.changed', () => {
      throw new Error('bad exporter');
    });
    bus.on('config.changed', (e) => got.push(e.path));
    bus.emit('config.changed', { path: 'queue.timeoutMs', value: 1, previous: 2 });
    assert.deepEqual(got, ['queue.timeoutMs']);
  });
});
