import { strict as assert } from 'node:assert';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { CLI, REPO_ROOT } from '../helpers/paths.js';
import { runCli } from '../helpers/run-cli.js';
import { followServer, type ServerChild, stopServer } from '../helpers/server-child.js';

const ENV = { PATH: process.env.PATH ?? '', NUCLEUS_ADMIN_KEY: 'admin-secret' };

function serve(args: string[]): ChildProcess {
  return spawn(process.execPath, [CLI, 'serve', '--host', '127.0.0.1', '--port', '0', '--no-watch', ...args], {
    cwd: REPO_ROOT,
    env: ENV,
  });
}

describe('nucleus serve: what it prints', function () {
  this.timeout(120_000);

  describe('piped, without options', () => {
    // One server for the tests below: its start-up output, then commands against it, then its exit.
    let child: ChildProcess;
    let followed: ServerChild;
    let url: string;
    before(async () => {
      child = serve([]);
      followed = followServer(child);
      url = await followed.url;
    });
    after(() => {
      child?.kill('SIGKILL');
    });

    it('writes only JSON lines, the start-up line among them with URL, version, models and backends, plugins, config and how to stop', async () => {
      // The start-up line comes after the load lines; give a last line a moment to arrive whole.
      await new Promise((resolve) => setTimeout(resolve, 200));
      const lines = followed
        .output()
        .split('\n')
        .filter((l) => l !== '');
      for (const line of lines) assert.doesNotThrow(() => JSON.parse(line), `not JSON: ${line}`);
      const banner = lines
        .map((l) => JSON.parse(l) as Record<string, unknown>)
        .find((l) => typeof l.msg === 'string' && l.msg.startsWith('nucleus listening on'));
      assert.ok(banner, followed.output());
      assert.equal(banner.msg, `nucleus listening on ${url}`);
      assert.equal(banner.url, url);
      assert.equal(banner.level, 'info');
      assert.match(String(banner.version), /^\d+\.\d+\.\d+/);
      const models = banner.models as Array<{ name: string; kind: string; backend?: string; state: string }>;
      assert.deepEqual(
        models.find((m) => m.name === 'mlp-classifier'),
        { name: 'mlp-classifier', kind: 'tensor', state: 'ready', backend: 'cpu' },
      );
      assert.ok(
        models.some((m) => m.kind === 'llm'),
        'the built-in LLM is listed',
      );
      const plugins = banner.plugins as { active: number; failed: number; total: number };
      assert.ok(plugins.active >= 6 && plugins.failed === 0, JSON.stringify(plugins));
      assert.deepEqual((banner.config as { cli: string[] }).cli, ['server.host', 'server.port', 'plugins.watch']);
      assert.deepEqual((banner.config as { env: string[] }).env, ['NUCLEUS_ADMIN_KEY']);
      assert.equal(banner.stop, 'send SIGINT or SIGTERM');
    });

    it('plugins list --url without the admin key says to pass one; with it, lists the live plugins', async () => {
      const [denied, listed] = await Promise.all([
        runCli(['plugins', 'list', '--url', url]),
        runCli(['plugins', 'list', '--url', url, '--key', 'admin-secret']),
      ]);
      assert.equal(denied.code, 1);
      assert.match(
        denied.err,
        new RegExp(
          `^nucleus: ${url.replace(/[.]/g, '\\.')} answered 401: .*\\(pass an admin key with --key or NUCLEUS_ADMIN_KEY\\)\\n$`,
        ),
      );
      assert.equal(listed.code, 0, listed.err);
      assert.match(listed.out, /backend-cpu\s+\d+\.\d+\.\d+\s+active/);
    });

    it('exits 0 on SIGTERM', async () => {
      assert.equal(await stopServer(child), 0, followed.output());
    });
  });

  it('with --log-format pretty, writes one readable line per event and the banner, without colours when piped', async () => {
    const child = serve(['--log-format', 'pretty']);
    try {
      const followed = followServer(child);
      const url = await followed.url;
      const out = followed.output();
      // biome-ignore lint/suspicious/noControlCharactersInRegex: a pipe must get no terminal colour codes
      assert.doesNotMatch(out, /\x1b\[/, 'no colour codes in a pipe');
      const loaded = out.split('\n').find((l) => l.includes('model loaded') && l.includes('mlp-classifier'));
      assert.ok(loaded, out);
      assert.match(loaded, /^\[\d\d:\d\d:\d\d\.\d{3}\] INFO: model loaded \{.*"backend":"cpu".*\}$/);
      assert.match(out, new RegExp(`➜ {2}nucleus listening on ${url.replace(/[.]/g, '\\.')}\\n`));
      assert.match(out, /\n {3}models {3}.*mlp-classifier \(cpu\)/);
      assert.match(out, /\n {3}plugins {2}\d+ active of \d+/);
      assert.match(
        out,
        /\n {3}config {3}defaults \+ env NUCLEUS_ADMIN_KEY \+ command line \(server\.host, server\.port, plugins\.watch, logging\.format\)/,
      );
      assert.match(out, /\n {3}stop {5}send SIGINT or SIGTERM/);
      assert.equal(await stopServer(child), 0);
    } finally {
      child.kill('SIGKILL');
    }
  });

  it('on a terminal (auto), shows the coloured banner and pretty lines', async function () {
    if (!existsSync('/usr/bin/script')) this.skip(); // util-linux `script` gives the server a terminal
    const command = [process.execPath, CLI, 'serve', '--host', '127.0.0.1', '--port', '0', '--no-watch']
      .map((a) => `'${a}'`)
      .join(' ');
    const child = spawn('/usr/bin/script', ['-qfec', command, '/dev/null'], {
      cwd: REPO_ROOT,
      env: { ...ENV, TERM: 'xterm' },
    });
    try {
      // The URL is coloured here, so wait for the banner's last line rather than for the plain listening line.
      let out = '';
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no banner in 60 s:\n${out}`)), 60_000);
        child.stdout.on('data', (d: Buffer) => {
          out += d.toString();
          if (out.includes('press Ctrl+C')) resolve(clearTimeout(timer));
        });
      });
      // biome-ignore lint/suspicious/noControlCharactersInRegex: the banner is checked for its terminal colour codes
      assert.match(out, /\x1b\[32m➜\x1b\[0m {2}nucleus listening on \x1b\[36m\x1b\[1mhttp:\/\/127\.0\.0\.1:\d+/);
      assert.match(out, /press Ctrl\+C/);
      assert.match(out, /INFO.*model loaded/);
      assert.doesNotMatch(out, /^\{"level"/m);
    } finally {
      child.kill('SIGKILL');
    }
  });
});
