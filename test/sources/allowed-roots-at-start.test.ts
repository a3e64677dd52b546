import { strict as assert } from 'node:assert';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { scaleModel } from '../engine/engine-fixtures.js';
import { HubServer } from '../helpers/hub-server.js';
import { tempDir } from '../helpers/paths.js';
import { followServer, serveFailure, spawnServe, stopServer } from '../helpers/server-child.js';

// `allowedModelRoots` holds for the models configured at start as for loads at run time: `nucleus serve` refuses a
// local model outside the roots, and an hf:// model whose cached copy lies outside them, with exit code 2.
describe('allowedModelRoots at start-up: nucleus serve', function () {
  this.timeout(300_000);
  let base: string;
  let allowed: string;
  let elsewhere: string;
  let hub: HubServer;
  let endpoint: string;

  before(async () => {
    base = tempDir('roots-at-start');
    allowed = join(base, 'allowed');
    elsewhere = join(base, 'elsewhere');
    mkdirSync(allowed, { recursive: true });
    mkdirSync(elsewhere, { recursive: true });
    writeFileSync(join(allowed, 'scale.onnx'), scaleModel(2));
    writeFileSync(join(elsewhere, 'scale.onnx'), scaleModel(3));
    hub = new HubServer([{ name: 'org/scale', files: [{ path: 'scale.onnx', data: Buffer.from(scaleModel(4)) }] }]);
    endpoint = await hub.start();
  });
  after(async () => {
    await hub?.stop();
    if (base) rmSync(base, { recursive: true, force: true });
  });
  const roots = () => ({ NUCLEUS_ALLOWED_MODEL_ROOTS: JSON.stringify([allowed]) });

  it('refuses a configured model outside the roots with exit code 2, naming the entry and its source only', async () => {
    const source = join(elsewhere, 'scale.onnx');
    const { code, err } = await serveFailure(`scale=${source}`, roots());
    assert.equal(code, 2, err);
    assert.match(
      err,
      /models\[0\] "scale": model source .*scale\.onnx is outside the folders models may be loaded from/,
    );
    assert.ok(!err.includes(allowed), 'the message does not list the allowed roots');
  });

  it('refuses an hf:// model fetched into a cache outside the roots with exit code 2', async () => {
    const env = { ...roots(), HF_ENDPOINT: endpoint, HF_HUB_CACHE: join(elsewhere, 'hub') };
    const { code, err } = await serveFailure('scale=hf://org/scale/scale.onnx', env);
    assert.equal(code, 2, err);
    assert.match(err, /model source hf:\/\/org\/scale\/scale\.onnx was fetched into a cache outside the folders/);
    assert.ok(!err.includes(join(elsewhere, 'hub')), 'the message does not show where the copy is');
  });

  it('serves a configured model under a root, and an hf:// model cached under one', async () => {
    const env = { ...roots(), HF_ENDPOINT: endpoint, HF_HUB_CACHE: join(allowed, 'hub') };
    for (const model of [`scale=${join(allowed, 'scale.onnx')}`, 'scale=hf://org/scale/scale.onnx']) {
      const child = spawnServe(model, env);
      const server = followServer(child);
      try {
        const url = await server.url;
        const ready = await fetch(`${url}/v2/models/scale/ready`);
        assert.equal(ready.status, 200, server.output());
      } finally {
        await stopServer(child);
      }
    }
  });
});
