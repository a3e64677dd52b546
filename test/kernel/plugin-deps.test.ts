import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Kernel } from '@nucleus/core';
import { startTestKernel } from '@nucleus/sdk/testing';
import { tempDir } from '../helpers/paths.js';

// A plugin whose entry declares `deps` and serves what it received at GET /deps/<id>.
function writeDepsPlugin(parent: string, id: string, deps: string, body: string): void {
  const dir = join(parent, id);
  mkdirSync(dir, { recursive: true });
  const nucleus = { id, version: '1.0.0', kernelApi: '^1.0.0', entry: './index.js', provides: [`routes:${id}`] };
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: `fixture-${id}`, type: 'module', nucleus }));
  writeFileSync(
    join(dir, 'index.js'),
    `import { definePlugin, ExtensionPoints, optionalService, ServiceRefs } from '@nucleus/sdk';
export default definePlugin({
  deps: ${deps},
  activate(ctx, deps) {
    ctx.contribute(ExtensionPoints.routes, { method: 'GET', path: '/deps/${id}', handler: () => (${body}) }, { name: '${id}' });
  },
});
`,
  );
}

describe('plugins declare the kernel services they use', function () {
  this.timeout(60_000);
  const dir = tempDir('plugin-deps');
  writeDepsPlugin(dir, 'needs-models', '{ models: ServiceRefs.models }', '{ models: deps.models.list().length }');
  writeDepsPlugin(
    dir,
    'maybe-models',
    '{ models: optionalService(ServiceRefs.models) }',
    '{ present: deps.models !== undefined }',
  );

  it('receive what they declare where the runtime offers it', async () => {
    const kit = await startTestKernel({ plugins: [dir] });
    try {
      const needs = await kit.request('/deps/needs-models');
      assert.equal(needs.status, 200);
      assert.ok((needs.body as { models: number }).models > 0, JSON.stringify(needs.body));
      assert.deepEqual((await kit.request('/deps/maybe-models')).body, { present: true });
    } finally {
      await kit.stop();
    }
  });

  it('fail, naming the service, when a required one is not offered; an optional one is undefined', async () => {
    // A bare kernel runs no engines, so it offers no model services.
    const kernel = Kernel.create({
      env: {},
      pluginFolders: [],
      nodeModules: [],
      cli: { 'plugins.watch': false, 'logging.level': 'silent', 'plugins.dirs': [dir] },
    });
    await kernel.start();
    try {
      const needs = kernel.plugins.get('needs-models');
      assert.equal(needs.state, 'failed');
      assert.match(
        String(needs.error),
        /needs the service 'nucleus\.models' \(deps\.models\), which this runtime does not offer/,
      );
      assert.equal(kernel.plugins.get('maybe-models').state, 'active');
    } finally {
      await kernel.stop();
    }
  });
});
