import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { NucleusServer } from '@nucleus/core';
import { scaffoldPlugin } from '@nucleus/sdk/scaffold';
import { CLI, REPO_ROOT, tempDir } from '../helpers/paths.js';

const TSC = join(REPO_ROOT, 'node_modules/typescript/bin/tsc');

function run(cmd: string, args: string[], cwd: string) {
  const res = spawnSync(cmd, args, { cwd, encoding: 'utf8', timeout: 120_000, env: { PATH: process.env.PATH ?? '' } });
  return { code: res.status, out: `${res.stdout}\n${res.stderr}` };
}

describe('plugin scaffolder', function () {
  this.timeout(120_000);

  it('writes a plugin that builds, passes its own test, and hot-loads into a running server', async () => {
    const parent = tempDir('scaffold');
    const server = await NucleusServer.start({
      env: {},
      pluginFolders: [],
      nodeModules: [],
      cli: {
        'server.port': 0,
        'plugins.watch': true,
        'plugins.dirs': [parent],
        'logging.level': 'silent',
        'plugin.hello-world.greeting': 'hot',
      },
    });
    try {
      const created = run(process.execPath, [CLI, 'plugin', 'new', 'hello-world', '--dir', parent], REPO_ROOT);
      assert.equal(created.code, 0, created.out);
      const dir = join(parent, 'hello-world');
      const build = run(process.execPath, [TSC, '-p', '.'], dir);
      assert.equal(build.code, 0, build.out);
      const test = run(process.execPath, ['--test', 'dist/test/'], dir);
      assert.equal(test.code, 0, test.out);
      assert.match(test.out, /# pass 1/);

      // The server watched the folder: the built plugin is picked up without a restart.
      let res: Response | undefined;
      for (let i = 0; i < 100; i++) {
        res = await fetch(`${server.url}/hello-world/hello`);
        if (res.status === 200) break;
        await new Promise((r) => setTimeout(r, 50));
      }
      assert.equal(res?.status, 200);
      assert.deepEqual(await res!.json(), { plugin: 'hello-world', version: '0.1.0', message: 'hot' });
      assert.equal(server.kernel.plugins.get('hello-world').state, 'active');
    } finally {
      await server.stop();
      rmSync(parent, { recursive: true, force: true });
    }
  });

  it('refuses names that are not plugin ids and folders that exist', () => {
    const parent = tempDir('scaffold-bad');
    try {
      assert.throws(
        () => scaffoldPlugin({ name: 'Bad Name', parentDir: parent }),
        /must be lowercase letters and digits/,
      );
      scaffoldPlugin({ name: 'twice', parentDir: parent });
      assert.throws(() => scaffoldPlugin({ name: 'twice', parentDir: parent }), /already exists/);
    } finally {
      rmSync(parent, { recursive: true, force: true });
    }
  });
});
