import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { createServer, type Server } from 'node:net';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { CLI, REPO_ROOT, tempDir } from '../helpers/paths.js';
import { writePlugin } from '../helpers/plugin-fixtures.js';
import { runCli } from '../helpers/run-cli.js';

/** Runs the CLI with only the variables given (plus PATH), so the caller's NUCLEUS_* cannot leak in. */
function nucleus(args: string[], env: Record<string, string> = {}) {
  const res = spawnSync(process.execPath, [CLI, ...args], {
    cwd: REPO_ROOT,
    env: { PATH: process.env.PATH ?? '', ...env },
    encoding: 'utf8',
    timeout: 60_000,
  });
  return { code: res.status, out: res.stdout, err: res.stderr };
}

async function holdPort(): Promise<{ server: Server; port: number }> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, port: (server.address() as AddressInfo).port };
}

describe('nucleus CLI: errors that say what to do', function () {
  this.timeout(90_000);

  it('serve on a port another process holds exits 2 before loading any model, saying which flag or key to change', async () => {
    const { server, port } = await holdPort();
    try {
      const res = await runCli(['serve', '--host', '127.0.0.1', '--port', String(port), '--no-watch']);
      assert.equal(res.code, 2, res.err);
      assert.equal(
        res.err,
        `nucleus: port ${port} is in use by another process; pass --port or set server.port (0 picks a free port)\n`,
      );
      assert.doesNotMatch(res.out, /model loaded/);
    } finally {
      server.close();
    }
  });

  it('serve on an address this machine does not have exits 2 naming --host and server.host', () => {
    // 192.0.2.0/24 is reserved for documentation (RFC 5737): no machine has it.
    const res = nucleus(['serve', '--host', '192.0.2.1', '--port', '18089', '--no-watch']);
    assert.equal(res.code, 2, res.err);
    assert.match(
      res.err,
      /^nucleus: 192\.0\.2\.1 is not an address of this machine; pass --host or set server\.host \(127\.0\.0\.1 for this machine only/,
    );
  });

  it('serve with a config broken in several ways lists every problem and exits 2', () => {
    const dir = tempDir('cli-errors');
    try {
      const file = join(dir, 'nucleus.yaml');
      writeFileSync(file, 'server:\n  port: 99999\nqueue:\n  highWatermark: 10\n');
      const res = nucleus(['serve', '--config', file, '--log-format', 'loud']);
      assert.equal(res.code, 2, res.err);
      assert.match(res.err, /^nucleus: Invalid configuration \(3 problems\):\n/);
      assert.match(res.err, /server\.port must be an integer from 0 to 65535; got 99999 from file .*nucleus\.yaml:2/);
      assert.match(res.err, /logging\.format must be one of "auto", "json", "pretty"; got "loud" from command line/);
      assert.match(
        res.err,
        /queue\.lowWatermark \(500\) must be below queue\.highWatermark \(10\) \(queue\.lowWatermark from default, queue\.highWatermark from file .*:4\)/,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('serve with two plugins contributing one route exits 2 naming both', () => {
    const dir = tempDir('cli-route-conflict');
    try {
      writePlugin(join(dir, 'plugins'), {
        id: 'my-models',
        activate: "ctx.contribute(ExtensionPoints.routes, { method: 'GET', path: '/v1/models', handler: () => [] });",
      });
      const file = join(dir, 'nucleus.yaml');
      writeFileSync(file, `plugins:\n  dirs: [${JSON.stringify(join(dir, 'plugins'))}]\n`);
      const res = nucleus(['serve', '--config', file, '--port', '0', '--no-watch', '--log-format', 'json']);
      assert.equal(res.code, 2, res.err);
      assert.match(
        res.err,
        /^nucleus: plugins contribute the same route: .*route GET \/v1\/models is contributed by both plugin "(api-openai|my-models)" \([^)]+\) and plugin "(api-openai|my-models)"/,
      );
      assert.ok(res.err.includes('"api-openai"') && res.err.includes('"my-models"'), res.err);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('plugins list --url with nothing listening names the URL, the cause and what to check', () => {
    const res = nucleus(['plugins', 'list', '--url', 'http://127.0.0.1:1']);
    assert.equal(res.code, 1, res.err);
    assert.equal(
      res.err,
      'nucleus: cannot reach a Nucleus server at http://127.0.0.1:1: connection refused (nothing listens on 127.0.0.1:1); ' +
        'check that `nucleus serve` runs there and that --url has its host and port (the server prints them at start)\n',
    );
  });

  it('plugins list --url that is not an http URL exits 2', () => {
    const res = nucleus(['plugins', 'list', '--url', 'localhost:8080']);
    assert.equal(res.code, 2, res.err);
    assert.match(
      res.err,
      /--url localhost:8080 is not an http\(s\) URL; pass the server's address, e.g\. --url http:\/\/127\.0\.0\.1:8080/,
    );
  });

  it('plugins list --url pointing at something that is not Nucleus says so', async () => {
    const other = createHttpServer((_req, res) => res.end('<html>hello</html>'));
    await new Promise<void>((resolve) => other.listen(0, '127.0.0.1', resolve));
    try {
      const url = `http://127.0.0.1:${(other.address() as AddressInfo).port}`;
      const res = await runCli(['plugins', 'list', '--url', url]);
      assert.equal(res.code, 1, res.err);
      assert.match(
        res.err,
        new RegExp(`^nucleus: ${url} answered 200 with something that is not JSON; is it a Nucleus server\\?`),
      );
    } finally {
      other.close();
    }
  });
});
