import { strict as assert } from 'node:assert';
import { readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { startTestKernel, type TestKernel } from '@nucleus/sdk/testing';
import { writeTinyLlamaCheckpoint } from '../format-safetensors/safetensors-fixtures.js';
import { HubServer, hubFile } from '../helpers/hub-server.js';
import { REPO_ROOT, tempDir } from '../helpers/paths.js';
import { ADMIN, admin } from '../model-lifecycle/lifecycle-fixtures.js';

// The two halves of "bring your model" together: a safetensors checkpoint repository fetched from a Hub-shaped
// server by source-hub, loaded by format-safetensors, and served, answering as the same folder on disk does.

const plugin = (id: string): string => join(REPO_ROOT, 'plugins', id);

async function chat(kit: TestKernel, model: string): Promise<string> {
  const res = await kit.request('/v1/chat/completions', {
    headers: { authorization: `Bearer ${ADMIN}` },
    body: { model, messages: [{ role: 'user', content: 'Hello there' }], max_tokens: 12, temperature: 0 },
  });
  assert.equal(res.status, 200, JSON.stringify(res.body));
  return (res.body as { choices: { message: { content: string } }[] }).choices[0]!.message.content;
}

describe('source-hub with format-safetensors: a checkpoint repository from the Hub', function () {
  this.timeout(300_000);
  const dir = tempDir('hub-safetensors');
  const local = writeTinyLlamaCheckpoint(join(dir, 'tiny-f16'), 'F16');
  const hub = new HubServer([
    {
      name: 'org/tiny-llama',
      files: [
        ...readdirSync(local).map((f) => hubFile(f, join(local, f), f.endsWith('.safetensors'))),
        { path: 'README.md', data: Buffer.from('# a model card') },
      ],
    },
  ]);
  let kit: TestKernel | undefined;
  after(async () => {
    await kit?.stop();
    await hub.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('loads hf://ORG/REPO at run time and answers as the same checkpoint on disk does', async () => {
    const endpoint = await hub.start();
    kit = await startTestKernel({
      plugins: [plugin('api-openai'), plugin('model-lifecycle'), plugin('source-hub')],
      builtinModels: false,
      env: { NUCLEUS_ADMIN_KEY: ADMIN, HF_ENDPOINT: endpoint, HF_HUB_CACHE: join(dir, 'hf-cache') },
    });
    const fromHub = await admin(kit, '/admin/models', { body: { name: 'hub', source: 'hf://org/tiny-llama' } });
    assert.equal(fromHub.status, 201, JSON.stringify(fromHub.body));
    const fromDisk = await admin(kit, '/admin/models', { body: { name: 'disk', source: local } });
    assert.equal(fromDisk.status, 201, JSON.stringify(fromDisk.body));
    const [a, b] = [await chat(kit, 'hub'), await chat(kit, 'disk')];
    assert.ok(a.length > 0);
    assert.equal(a, b);
    // The checkpoint's files came down, the model card did not.
    assert.equal(hub.downloads.get('org/tiny-llama/README.md'), undefined);
    assert.equal(hub.downloads.get('org/tiny-llama/model.safetensors'), 1);
  });
});
