import { strict as assert } from 'node:assert';
import { spawn } from 'node:child_process';
import { existsSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { mapLimit } from '../helpers/map-limit.js';
import { CLI, REPO_ROOT, tempDir } from '../helpers/paths.js';
import { writePlugin } from '../helpers/plugin-fixtures.js';
import { runCli, type CliRun } from '../helpers/run-cli.js';

/** Runs the CLI with only the variables given (plus PATH), so the caller's NUCLEUS_* cannot leak in. */
const nucleus = (args: string[], env: Record<string, string> = {}): Promise<CliRun> => runCli(args, env);

/** Independent invocations, one per core: each is a process start, most of what these tests cost. */
const nucleusAll = (runs: Array<[string[], Record<string, string>?]>): Promise<CliRun[]> =>
  mapLimit(runs, ([args, env]) => nucleus(args, env));

const SHIPPED = ['backend-cpu', 'backend-cuda', 'backend-rocm', 'metrics', 'quant-int8', 'spec-decode'];

describe('nucleus CLI', function () {
  this.timeout(120_000);

  it('prints help for every command', async () => {
    const [top, serve, list] = await nucleusAll([[['--help']], [['serve', '--help']], [['plugins', 'list', '--help']]]);
    assert.equal(top!.code, 0);
    for (const cmd of ['serve', 'plugins', 'plugin', 'config']) assert.match(top!.out, new RegExp(`\\b${cmd}\\b`));
    for (const flag of ['--host', '--port', '--config', '--model', '--backend'])
      assert.match(serve!.out, new RegExp(flag));
    assert.equal(list!.code, 0);
  });

  it('exits 2 on an unknown command or option', async () => {
    const [command, option] = await nucleusAll([[['frobnicate']], [['serve', '--no-such-flag']]]);
    assert.equal(command!.code, 2);
    assert.equal(option!.code, 2);
  });

  it('exits 2 when serve is asked for a backend no plugin installs, naming those installed, before any plugin starts', async () => {
    const names = ['tpu', 'cdua'];
    const dir = tempDir('cli-backend');
    const marker = join(dir, 'activated');
    // Says whether plugins were started at all: the backend is checked against what the manifests declare first.
    writePlugin(dir, {
      id: 'marker',
      activate: `(await import('node:fs')).writeFileSync(${JSON.stringify(marker)}, '');`,
    });
    try {
      const runs = await nucleusAll(
        names.map((name) => [
          ['serve', '--port', '0', '--backend', name],
          { NUCLEUS_PLUGINS_DIRS: JSON.stringify([dir]) },
        ]),
      );
      for (const [i, name] of names.entries()) {
        const res = runs[i]!;
        assert.equal(res.code, 2, res.err);
        assert.match(
          res.err,
          new RegExp(
            `^nucleus: Invalid configuration: backend '${name}' \\(from command line\\) is not installed; the backends installed are auto, (\\w+, )*cpu\\n$`,
          ),
        );
        for (const installed of ['cuda', 'rocm']) assert.match(res.err, new RegExp(`, ${installed},`));
      }
      assert.equal(existsSync(marker), false, 'no plugin was started');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('lists the shipped plugins with versions and states', async () => {
    const [res, listed] = await nucleusAll([[['plugins', 'list', '--json']], [['plugins', 'list']]]);
    assert.equal(res!.code, 0, res!.err);
    const plugins = JSON.parse(res!.out) as Array<{ id: string; version: string; state: string }>;
    for (const id of SHIPPED) {
      const p = plugins.find((x) => x.id === id);
      assert.ok(p, `${id} listed`);
      assert.match(p.version, /^\d+\.\d+\.\d+/);
      assert.equal(p.state, 'resolved');
    }
    const table = listed!.out;
    assert.match(table.split('\n')[0]!, /^ID\s+VERSION\s+STATE\s+PROVIDES/);
    assert.match(table, /backend-cpu\s+\d+\.\d+\.\d+\s+resolved\s+backend:cpu/);
  });

  it('prints the effective config with each value’s source', async () => {
    const [res, printed] = await nucleusAll([
      [
        ['config', 'print', '--json', '--set', 'queue.timeoutMs=500'],
        { NUCLEUS_SERVER_PORT: '9123', NUCLEUS_ADMIN_KEY: 'secret-admin' },
      ],
      [['config', 'print'], { NUCLEUS_SERVER_PORT: '9123' }],
    ]);
    assert.equal(res!.code, 0, res!.err);
    const { config, sources } = JSON.parse(res!.out) as {
      config: { server: { port: number }; auth: { adminKey: string } };
      sources: Record<string, string>;
    };
    assert.equal(config.server.port, 9123);
    assert.equal(sources['server.port'], 'env NUCLEUS_SERVER_PORT');
    assert.equal(sources['queue.timeoutMs'], 'command line');
    assert.equal(sources['server.host'], 'default');
    assert.equal(config.auth.adminKey, '***');
    const table = printed!.out;
    assert.match(table, /server\.port\s+9123\s+env NUCLEUS_SERVER_PORT\s+NUCLEUS_SERVER_PORT/);
  });

  it('refuses an invalid config with the key named and exit code 2', async () => {
    const dir = tempDir('cli-config');
    try {
      const file = join(dir, 'nucleus.yaml');
      writeFileSync(file, 'server:\n  port: 99999\n');
      const [res, env] = await nucleusAll([
        [['config', 'print', '--config', file]],
        [['serve'], { NUCLEUS_QUEUE_HIGH_WATERMARK: 'lots' }],
      ]);
      assert.equal(res!.code, 2);
      assert.match(res!.err, /server\.port must be an integer from 0 to 65535; got 99999 from file .*nucleus\.yaml:2/);
      assert.equal(env!.code, 2);
      assert.match(env!.err, /queue\.highWatermark .*NUCLEUS_QUEUE_HIGH_WATERMARK/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('validates a plugin folder, naming what is wrong', async () => {
    const dir = tempDir('cli-validate');
    try {
      const [ok, bad, shipped] = await nucleusAll([
        [['plugins', 'validate', writePlugin(dir, { id: 'fine' })]],
        [
          [
            'plugins',
            'validate',
            writePlugin(dir, { id: 'wrong', kernelApi: '^9.0.0', manifest: { entry: './missing.js' } }),
          ],
        ],
        [['plugins', 'validate', join(REPO_ROOT, 'plugins/backend-cpu')]],
      ]);
      assert.equal(ok!.code, 0, ok!.err);
      assert.match(ok!.out, /ok: fine@1\.0\.0/);
      assert.equal(bad!.code, 1);
      assert.match(bad!.err, /nucleus\.kernelApi: \^9\.0\.0 does not include this kernel's API/);
      assert.match(bad!.err, /nucleus\.entry: \.\/missing\.js does not exist/);
      assert.equal(shipped!.code, 0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('serves, answers health, and exits 0 on SIGTERM', async () => {
    const child = spawn(process.execPath, [CLI, 'serve', '--host', '127.0.0.1', '--port', '0', '--no-watch'], {
      cwd: REPO_ROOT,
      env: { PATH: process.env.PATH ?? '', NUCLEUS_LOGGING_LEVEL: 'warn', NUCLEUS_ADMIN_KEY: 'secret-admin' },
    });
    try {
      const url = await new Promise<string>((resolve, reject) => {
        let out = '';
        const timer = setTimeout(() => reject(new Error(`no listening line: ${out}`)), 60_000);
        child.stdout.on('data', (d: Buffer) => {
          out += d.toString();
          const m = /nucleus listening on (http:\/\/[^\s"]+)/.exec(out);
          if (m) {
            clearTimeout(timer);
            resolve(m[1]!);
          }
        });
      });
      assert.equal((await fetch(`${url}/health`)).status, 200);
      const plugins = (await (
        await fetch(`${url}/admin/plugins`, { headers: { authorization: 'Bearer secret-admin' } })
      ).json()) as { plugins: Array<{ id: string; state: string }> };
      for (const id of SHIPPED)
        assert.ok(
          plugins.plugins.some((p) => p.id === id),
          `${id} in /admin/plugins`,
        );
      const reload = await fetch(`${url}/admin/plugins/backend-cpu/reload`, {
        method: 'POST',
        headers: { authorization: 'Bearer secret-admin' },
      });
      assert.equal(reload.status, 200);
      assert.equal((await fetch(`${url}/health`)).status, 200);
      const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
      child.kill('SIGTERM');
      assert.equal(await exited, 0);
    } finally {
      child.kill('SIGKILL');
    }
  });
});
