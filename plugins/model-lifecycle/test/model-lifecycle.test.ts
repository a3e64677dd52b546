import assert from 'node:assert/strict';
import { ModelLifecycle, modelRoutes } from '@nucleus/plugin-model-lifecycle';
import { type NucleusEvents, NucleusError, type RouteContext } from '@nucleus/sdk';
import { eventBus } from '@nucleus/sdk/testing';
import { MemoryRegistry } from './memory-registry.js';
import { recordingLogger } from '@nucleus/sdk/testing';

function rig(drainTimeoutMs = 5000) {
  const registry = new MemoryRegistry();
  const events = eventBus();
  const swapped: NucleusEvents['model.swapped'][] = [];
  const failed: NucleusEvents['model.swapFailed'][] = [];
  events.on('model.swapped', (e) => swapped.push(e));
  events.on('model.swapFailed', (e) => failed.push(e));
  const logger = recordingLogger();
  const lifecycle = new ModelLifecycle(() => registry, { drainTimeoutMs }, events, logger);
  return { registry, lifecycle, swapped, failed, lines: logger.lines };
}

describe('model-lifecycle: the lifecycle policy', () => {
  it('a swap without its own drain timeout gets the configured one, and announces the versions', async () => {
    const r = rig(7000);
    await r.lifecycle.load({ name: 'm', source: '/models/m/1' });
    const after = await r.lifecycle.swap('m', { source: '/models/m/2' });
    assert.equal(after.defaultVersion, '2');
    assert.deepEqual(r.registry.calls[1], {
      op: 'swap',
      name: 'm',
      request: { source: '/models/m/2', drainTimeoutMs: 7000 },
    });
    await r.lifecycle.swap('m', { source: '/models/m/3', drainTimeoutMs: 0 });
    assert.equal((r.registry.calls[2] as { request: { drainTimeoutMs: number } }).request.drainTimeoutMs, 0);
    assert.deepEqual(
      r.swapped.map((e) => [e.model, e.fromVersion, e.toVersion, e.source]),
      [
        ['m', '1', '2', '/models/m/2'],
        ['m', '2', '3', '/models/m/3'],
      ],
    );
    assert.ok(r.swapped.every((e) => e.durationMs >= 0));
    assert.ok(r.lines.some((l) => l.level === 'info' && l.msg === 'model swapped'));
  });

  it('a failed swap whose old version still serves is announced as rolled back, with the registry’s error', async () => {
    const r = rig();
    await r.lifecycle.load({ name: 'm', source: '/models/m/1' });
    await assert.rejects(r.lifecycle.swap('m', { source: 'bad:/nowhere' }), (err: NucleusError) => {
      assert.equal(err.status, 400);
      assert.equal(err.code, 'invalid_model');
      return true;
    });
    assert.deepEqual(r.failed, [
      { model: 'm', source: 'bad:/nowhere', error: 'cannot read bad:/nowhere', rolledBack: true },
    ]);
    assert.equal(r.lines.at(-1)!.level, 'warn');
    assert.equal(r.lifecycle.list()[0]!.defaultVersion, '1');
  });

  it('a failed swap that left the model failed is not rolled back, and an unknown failure becomes a 500', async () => {
    const r = rig();
    await r.lifecycle.load({ name: 'm', source: '/models/m/1' });
    await assert.rejects(r.lifecycle.swap('m', { source: 'breaks:/v2' }), (err: NucleusError) => {
      assert.ok(err instanceof NucleusError);
      assert.equal(err.status, 500);
      assert.equal(err.code, 'internal_error');
      return true;
    });
    assert.equal(r.failed[0]!.rolledBack, false);
    assert.equal(r.lines.at(-1)!.level, 'error');
    assert.deepEqual(r.swapped, []);
  });

  it('swapping a model that is not there fails without a rollback check of a model that never was', async () => {
    const r = rig();
    await assert.rejects(r.lifecycle.swap('ghost', { source: '/x' }), /no model "ghost"/);
    assert.deepEqual(r.failed, []);
  });

  it('unload passes the configured drain timeout unless the caller gives one', async () => {
    const r = rig(1234);
    await r.lifecycle.load({ name: 'a', source: '/a' });
    await r.lifecycle.load({ name: 'b', source: '/b' });
    await r.lifecycle.unload('a');
    await r.lifecycle.unload('b', 10);
    assert.deepEqual(
      r.registry.calls.filter((c) => c.op === 'unload'),
      [
        { op: 'unload', name: 'a', options: { drainTimeoutMs: 1234 } },
        { op: 'unload', name: 'b', options: { drainTimeoutMs: 10 } },
      ],
    );
    assert.deepEqual(r.lifecycle.list(), []);
  });

  it('the DELETE route takes drainTimeoutMs as whole milliseconds and refuses anything else with a 400', async () => {
    const r = rig(1234);
    const remove = modelRoutes(r.lifecycle).find((route) => route.method === 'DELETE')!;
    await r.lifecycle.load({ name: 'm', source: '/m' });
    const ctx = (query: Record<string, unknown>) => ({ query, params: { name: 'm' } }) as unknown as RouteContext;
    for (const bad of ['1.5', '-1', 'soon', ['1', '2']]) {
      await assert.rejects(
        async () => remove.handler(ctx({ drainTimeoutMs: bad })),
        (err: NucleusError) => {
          assert.deepEqual([err.status, err.code, err.param], [400, 'invalid_query', 'drainTimeoutMs']);
          return true;
        },
      );
    }
    assert.deepEqual(await remove.handler(ctx({ drainTimeoutMs: '250' })), { unloaded: 'm' });
    assert.deepEqual(r.registry.calls.at(-1), { op: 'unload', name: 'm', options: { drainTimeoutMs: 250 } });
  });
});
