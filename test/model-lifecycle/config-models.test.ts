import assert from 'node:assert/strict';
import { join } from 'node:path';
import { diffModels } from '@nucleus/plugin-model-lifecycle';
import type { TestKernel } from '@nucleus/sdk/testing';
import { requireStories, STORIES_DIR } from '../llm-formats/llm-module.js';
import { admin, errorOf, startLifecycleKernel } from './lifecycle-fixtures.js';

type Listed = { name: string; kind: string; defaultVersion?: string; versions: { version: string; state: string }[] };

// Polls GET /admin/models until `done` holds (bounded: config changes apply in the background).
async function until(kit: TestKernel, done: (models: Listed[]) => boolean): Promise<Listed[]> {
  const end = Date.now() + 60_000;
  for (;;) {
    const models = ((await admin(kit, '/admin/models')).body as { models: Listed[] }).models;
    if (done(models)) return models;
    if (Date.now() > end) throw new Error(`timed out; models: ${JSON.stringify(models)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('models changed in the config while serving go through the lifecycle', function () {
  this.timeout(120_000);

  it('diffs old and new entries into loads, swaps and unloads by name', () => {
    const a = { name: 'a', path: '/a.gguf' };
    const b = { name: 'b', path: '/b.onnx' };
    assert.deepEqual(
      diffModels(
        [a, b],
        [
          { ...a, path: '/a2.gguf' },
          { name: 'c', path: '/c.gguf' },
        ],
      ),
      {
        load: [{ name: 'c', path: '/c.gguf' }],
        swap: [{ name: 'a', path: '/a2.gguf' }],
        unload: ['b'],
        unloadVersions: [],
      },
    );
    assert.deepEqual(diffModels([a], [a]), { load: [], swap: [], unload: [], unloadVersions: [] });
  });

  it('tells entries of one name apart by version: a new version loads beside, a version gone unloads alone', () => {
    const v1 = { name: 'w', path: '/w1.gguf', version: '1' };
    const v2 = { name: 'w', path: '/w2.gguf', version: '2' };
    assert.deepEqual(diffModels([v1], [v1, v2]), { load: [v2], swap: [], unload: [], unloadVersions: [] });
    assert.deepEqual(diffModels([v1, v2], [v1]), {
      load: [],
      swap: [],
      unload: [],
      unloadVersions: [{ name: 'w', version: '2' }],
    });
    assert.deepEqual(diffModels([v1, v2], [v1, { ...v2, path: '/w3.gguf' }]), {
      load: [],
      swap: [{ ...v2, path: '/w3.gguf' }],
      unload: [],
      unloadVersions: [],
    });
    assert.deepEqual(diffModels([v1, v2], []), { load: [], swap: [], unload: ['w'], unloadVersions: [] });
  });

  it('PATCH /admin/config models loads a new entry, swaps a changed one and unloads a removed one', async function () {
    requireStories(this);
    const kit = await startLifecycleKernel();
    try {
      const patch = (models: unknown[]) => admin(kit, '/admin/config', { method: 'PATCH', body: { models } });
      const story = { name: 'story', path: join(STORIES_DIR, 'stories260K.gguf') };
      const res = await patch([story]);
      assert.equal(res.status, 200, JSON.stringify(res.body));
      const loaded = await until(kit, (ms) =>
        ms.some((m) => m.name === 'story' && m.versions.some((v) => v.state === 'ready')),
      );
      assert.equal(loaded.find((m) => m.name === 'story')!.kind, 'llm');
      const completion = await admin(kit, '/v1/completions', {
        method: 'POST',
        body: { model: 'story', prompt: 'Once upon a time', max_tokens: 8, temperature: 0 },
      });
      assert.equal(completion.status, 200, JSON.stringify(completion.body));

      assert.equal((await patch([{ ...story, path: join(STORIES_DIR, 'stories260K-q8_0.gguf') }])).status, 200);
      await until(kit, (ms) => ms.find((m) => m.name === 'story')?.defaultVersion === '2');

      assert.equal((await patch([])).status, 200);
      await until(kit, (ms) => !ms.some((m) => m.name === 'story'));
      const gone = await admin(kit, '/v1/completions', {
        method: 'POST',
        body: { model: 'story', prompt: 'Once', max_tokens: 1 },
      });
      assert.equal(gone.status, 404);
      assert.equal(errorOf(gone).code, 'model_not_found');
    } finally {
      await kit.stop();
    }
  });
});
