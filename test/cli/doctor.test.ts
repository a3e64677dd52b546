import { strict as assert } from 'node:assert';
import { rmSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { formatChecks } from '@nucleus/core/internal/cli/doctor-command';
import { checkDisk, checkMemory, checkNode, type CheckResult } from '@nucleus/core/internal/cli/doctor-checks';
import { tempDir } from '../helpers/paths.js';
import { writePlugin } from '../helpers/plugin-fixtures.js';
import { runCli, type CliRun } from '../helpers/run-cli.js';

function doctor(args: string[], env: Record<string, string> = {}): Promise<CliRun> {
  return runCli(['doctor', ...args], env);
}

const GiB = 1024 ** 3;

describe('nucleus doctor', function () {
  this.timeout(90_000);

  it('checks Node, onnxruntime-node, memory, config, disk, port, plugins and models, and exits 0 when all is well', async () => {
    const res = await doctor(['--port', '0']);
    assert.equal(res.code, 0, res.out + res.err);
    for (const name of ['node', 'onnxruntime', 'memory', 'config', 'disk', 'port', 'plugins', 'models']) {
      assert.match(res.out, new RegExp(`^ {2}(ok|warn) +${name} `, 'm'), `${name} in:\n${res.out}`);
    }
    assert.match(res.out, /onnxruntime-node \d+\.\d+\.\d+ runs a test graph; providers: cpu/);
    assert.match(res.out, /plugins +\d+ valid/);
  });

  it('fails the port check when another process holds the port, saying what to pass, and exits 1', async () => {
    const holder = createServer();
    await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
    const port = (holder.address() as AddressInfo).port;
    try {
      const res = await doctor(['--port', String(port), '--json']);
      assert.equal(res.code, 1, res.err);
      const { ok, checks } = JSON.parse(res.out) as { ok: boolean; checks: CheckResult[] };
      assert.equal(ok, false);
      assert.deepEqual(
        checks.find((c) => c.name === 'port'),
        {
          name: 'port',
          status: 'fail',
          message: `127.0.0.1:${port}: port ${port} is in use by another process`,
          fix: 'pass --port or set server.port (0 picks a free port)',
        },
      );
    } finally {
      holder.close();
    }
  });

  it('validates the config as serve does, every problem listed, and skips what depends on it', async () => {
    const res = await doctor(['--set', 'queue.lowWatermark=5000', '--set', 'server.port=x']);
    assert.equal(res.code, 1);
    assert.match(res.out, /^ {2}fail +config +2 problems:$/m);
    assert.match(res.out, /- server\.port must be an integer from 0 to 65535; got "x" from command line/);
    assert.match(res.out, /- queue\.lowWatermark \(5000\) must be below queue\.highWatermark \(1000\)/);
    assert.match(res.out, /^ {2}warn +port +not checked: the config is invalid$/m);
    assert.match(res.out, /^1 failed, 3 warnings$/m);
  });

  it('warns about env vars and keys that set nothing, and fails on a plugin that cannot load and a model path that is not there', async () => {
    const dir = tempDir('doctor');
    try {
      writePlugin(dir, { id: 'unbuilt', manifest: { entry: './dist/index.js' } });
      const config = join(dir, 'nucleus.yaml');
      writeFileSync(
        config,
        `plugins:\n  dirs: [${JSON.stringify(dir)}]\n  disabled: [tuner]\ntuning:\n  enabled: true\n` +
          'models:\n  - { name: gone, path: ./nowhere/model.onnx }\n',
      );
      const res = await doctor(['--config', config, '--port', '0', '--json'], { NUCLEUS_MODLES: '[]' });
      assert.equal(res.code, 1, res.err);
      const checks = new Map((JSON.parse(res.out) as { checks: CheckResult[] }).checks.map((c) => [c.name, c]));
      assert.equal(checks.get('config')?.status, 'warn');
      assert.match(checks.get('config')!.message, /NUCLEUS_MODLES is not the env var of any config key/);
      assert.match(
        checks.get('config')!.message,
        /tuning\.enabled is true \(from file .*nucleus\.yaml:5\) but plugin "tuner", which reads it, is disabled/,
      );
      assert.equal(checks.get('plugins')?.status, 'fail');
      assert.match(
        checks.get('plugins')!.message,
        /unbuilt: nucleus\.entry: \.\/dist\/index\.js does not exist; build the plugin first \(npm run build\)/,
      );
      assert.equal(checks.get('models')?.status, 'fail');
      assert.equal(checks.get('models')?.message, `model 'gone': ${join(dir, 'nowhere/model.onnx')} does not exist`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('judges Node versions, memory and disk by their thresholds', async () => {
    assert.equal(checkNode('>=20.10', '20.20.0').status, 'ok');
    assert.deepEqual(checkNode('>=20.10', '18.19.0'), {
      name: 'node',
      status: 'fail',
      message: 'v18.19.0 is outside >=20.10',
      fix: 'install a Node.js release in >=20.10 (nodejs.org, or nvm install 20)',
    });
    assert.equal(checkMemory(8 * GiB, GiB / 4, 2 * GiB).status, 'ok');
    assert.equal(checkMemory(GiB, GiB / 4, 2 * GiB).status, 'warn');
    assert.equal(checkMemory(GiB / 8, GiB / 4, 2 * GiB).status, 'fail');
    const dir = tempDir('doctor-disk');
    try {
      // The cache folder need not exist yet: the disk it would be created on is checked.
      assert.equal((await checkDisk(join(dir, 'not/yet'), 0, 0)).status, 'ok');
      const tooSmall = await checkDisk(dir, Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER);
      assert.equal(tooSmall.status, 'fail');
      assert.match(tooSmall.fix!, /set cache\.dir \(env NUCLEUS_CACHE_DIR\)/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('prints each check on a line, the fix indented below, and counts the problems', () => {
    const text = formatChecks(
      [
        { name: 'node', status: 'ok', message: 'v20' },
        { name: 'port', status: 'fail', message: 'in use', fix: 'pass --port' },
      ],
      false,
    );
    assert.equal(
      text.split('\n').slice(2).join('\n'),
      '  ok    node  v20\n  fail  port  in use\n              fix: pass --port\n\n1 failed\n',
    );
  });
});
