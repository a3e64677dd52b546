import { strict as assert } from 'node:assert';
import type { PluginManifest } from '@nucleus/sdk';
import { findCycles, resolvePlugins } from '@nucleus/core/internal/kernel/plugin-resolver';

function m(id: string, version = '1.0.0', requires?: Record<string, string>, kernelApi = '^1.0.0'): PluginManifest {
  return { id, version, kernelApi, entry: './index.js', ...(requires ? { requires } : {}) };
}

describe('plugin resolver', () => {
  it('orders activation so every plugin comes after what it requires', () => {
    const { order, problems } = resolvePlugins(
      [
        m('api', '1.0.0', { engine: '^1.0.0', auth: '^2.0.0' }),
        m('engine', '1.2.0', { backend: '>=1' }),
        m('backend'),
        m('auth', '2.1.0'),
      ],
      '1.0.0',
    );
    assert.equal(problems.size, 0);
    for (const [before, after] of [
      ['engine', 'api'],
      ['auth', 'api'],
      ['backend', 'engine'],
    ]) {
      assert.ok(order.indexOf(before!) < order.indexOf(after!), `${before} before ${after} in ${order.join(',')}`);
    }
  });

  it('refuses a plugin whose kernel API range excludes this kernel, saying both versions', () => {
    const { order, problems } = resolvePlugins([m('old', '1.0.0', undefined, '^0.9.0'), m('ok')], '1.0.0');
    assert.deepEqual(order, ['ok']);
    assert.equal(problems.get('old'), 'needs kernel API ^0.9.0, but this kernel provides 1.0.0');
  });

  it('reports missing and out-of-range dependencies, and what depends on them', () => {
    const { order, problems } = resolvePlugins(
      [
        m('a', '1.0.0', { ghost: '^1.0.0' }),
        m('b', '1.0.0', { c: '^2.0.0' }),
        m('c', '1.5.0'),
        m('d', '1.0.0', { b: '*' }),
      ],
      '1.0.0',
    );
    assert.deepEqual(order, ['c']);
    assert.match(problems.get('a')!, /requires plugin "ghost" \^1\.0\.0, which is not installed/);
    assert.equal(problems.get('b'), 'requires plugin "c" ^2.0.0, but version 1.5.0 is installed');
    assert.match(problems.get('d')!, /requires plugin "b", which cannot be activated: requires plugin "c"/);
  });

  it('reports a dependency cycle with its path and keeps the rest', () => {
    const manifests = [
      m('x', '1.0.0', { y: '*' }),
      m('y', '1.0.0', { z: '*' }),
      m('z', '1.0.0', { x: '*' }),
      m('free'),
    ];
    assert.deepEqual(findCycles(manifests), [['x', 'y', 'z']]);
    const { order, problems } = resolvePlugins(manifests, '1.0.0');
    assert.deepEqual(order, ['free']);
    assert.equal(problems.get('x'), 'dependency cycle: x → y → z → x');
    assert.equal(problems.get('z'), 'dependency cycle: x → y → z → x');
  });
});
