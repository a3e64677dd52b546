import { strict as assert } from 'node:assert';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { HubServer, hubFile } from '../helpers/hub-server.js';
import { CLI, REPO_ROOT, tempDir } from '../helpers/paths.js';
import { runCli } from '../helpers/run-cli.js';
import { followServer, stopServer } from '../helpers/server-child.js';
import { ORACLE_DIR, requireOracle } from '../llm-formats/llm-module.js';

// `nucleus pull`, `nucleus models ls|rm` and `nucleus serve` with hf:// models, as processes pointed at a
// Hub-shaped server on 127.0.0.1 by HF_ENDPOINT.

const ADMIN = 'admin-key-hub-0123456789';
const oracle = (stem: string) => join(ORACLE_DIR, `${stem}.gguf`);

// Pulls of multi-megabyte files on a busy machine may take a while.
const run = (args: string[], env: Record<string, string>) => runCli(args, env, 120_000);

describe('the nucleus CLI with hf:// models', function () {
  this.timeout(300_000);
  let hub: HubServer;
  let env: Record<string, string>;
  let cache: string;

  before(async function () {
    requireOracle(this);
    hub = new HubServer([
      { name: 'org/chat', files: [hubFile('chat-Q4_K_M.gguf', oracle('quant-zoo-Q4_K_M'))] },
      { name: 'org/big', files: [hubFile('big-F16.gguf', oracle('llama3-tiny-F16'))] },
      { name: 'org/page', files: [hubFile('page.gguf', oracle('quant-zoo-Q5_1'))] },
    ]);
    cache = tempDir('hub-cli');
    env = {
      HF_ENDPOINT: await hub.start(),
      HF_HUB_CACHE: join(cache, 'hub'),
      NUCLEUS_CACHE_DIR: join(cache, 'graphs'),
    };
  });
  after(async () => {
    await hub?.stop();
    if (cache) rmSync(cache, { recursive: true, force: true });
  });

  it('two `nucleus pull` processes fetching one file at once download it once; ls lists it, rm removes it', async () => {
    const source = 'hf://org/big/big-F16.gguf';
    const [a, b] = await Promise.all([run(['pull', source], env), run(['pull', source], env)]);
    assert.equal(a.code, 0, a.err);
    assert.equal(b.code, 0, b.err);
    assert.equal(hub.downloads.get('org/big/big-F16.gguf'), 1);
    const path = /-> (.+)/.exec(a.out)![1]!;
    assert.ok(readFileSync(path).equals(readFileSync(oracle('llama3-tiny-F16'))));

    const ls = await run(['models', 'ls'], env);
    assert.equal(ls.code, 0, ls.err);
    assert.match(ls.out, /hf:\/\/org\/big\s+42\.9 MiB\s+1\s+main/);
    const json = JSON.parse((await run(['models', 'ls', '--json'], env)).out) as {
      source: string;
      sizeBytes: number;
    }[];
    assert.deepEqual(json, [
      { ...json[0], source: 'hf://org/big', sizeBytes: readFileSync(oracle('llama3-tiny-F16')).length },
    ]);
    const rm = await run(['models', 'rm', 'org/big'], env);
    assert.equal(rm.code, 0, rm.err);
    assert.match(rm.out, /removed hf:\/\/org\/big/);
    assert.ok(!existsSync(join(cache, 'hub', 'models--org--big')));
    const again = await run(['models', 'rm', 'org/big'], env);
    assert.equal(again.code, 2);
    assert.match(again.err, /not in the cache/);
  });

  it('`nucleus pull https://…` fetches over TLS from a host the system trusts, and refuses one it does not', async () => {
    const tls = join(REPO_ROOT, 'test', 'fixtures', 'tls');
    const body = readFileSync(oracle('quant-zoo-Q4_0'));
    const server = createServer(
      { cert: readFileSync(join(tls, 'loopback-cert.pem')), key: readFileSync(join(tls, 'loopback-key.pem')) },
      (req, res) => {
        if (!req.url?.endsWith('.gguf')) return void res.writeHead(404).end('not found');
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': body.length }).end(body);
      },
    );
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const url = `https://127.0.0.1:${(server.address() as AddressInfo).port}/models/zoo-Q4_0.gguf`;
      const sha = createHash('sha256').update(body).digest('hex');
      // The test's certificate is trusted the way an operator trusts a private CA: NODE_EXTRA_CA_CERTS.
      const trusted = await run(['pull', url, '--sha256', sha], {
        ...env,
        NODE_EXTRA_CA_CERTS: join(tls, 'loopback-cert.pem'),
      });
      assert.equal(trusted.code, 0, trusted.err);
      const path = /-> (.+)/.exec(trusted.out)![1]!;
      assert.ok(readFileSync(path).equals(body));
      const untrusted = await run(['pull', url.replace('zoo-Q4_0', 'other')], env);
      assert.notEqual(untrusted.code, 0, untrusted.out);
      assert.match(untrusted.err, /TLS certificate of 127\.0\.0\.1:\d+ is not trusted .*NODE_EXTRA_CA_CERTS/);
    } finally {
      server.close();
    }
  });

  it('`nucleus pull` exits 2 with a clear message for an unknown scheme, a missing file and offline misses', async () => {
    const scheme = await run(['pull', 'ftp://example.com/m.gguf'], env);
    assert.equal(scheme.code, 2);
    assert.match(scheme.err, /no active plugin fetches ftp:\/\/ sources.*hf:\/\//);
    const missing = await run(['pull', 'hf://org/chat/nope.gguf'], env);
    assert.equal(missing.code, 2);
    assert.match(missing.err, /has no file nope\.gguf; it has chat-Q4_K_M\.gguf/);
    const offline = await run(['pull', 'hf://org/chat/chat-Q4_K_M.gguf'], { ...env, HF_HUB_OFFLINE: '1' });
    assert.notEqual(offline.code, 0);
    assert.match(offline.err, /not in the cache .* offline/);
  });

  it('`nucleus serve` answers a chat completion from an hf:// model, and bad sources fail clearly while it serves', async () => {
    const config = join(cache, 'nucleus.json');
    writeFileSync(
      config,
      JSON.stringify({
        models: [
          { name: 'gone', path: 'hf://org/gone/model.gguf', optional: true },
          { name: 'chat', path: 'hf://org/chat/chat-Q4_K_M.gguf' },
        ],
      }),
    );
    const child: ChildProcess = spawn(
      process.execPath,
      [CLI, 'serve', '--config', config, '--host', '127.0.0.1', '--port', '0', '--no-watch'],
      { cwd: REPO_ROOT, env: { PATH: process.env.PATH ?? '', NUCLEUS_ADMIN_KEY: ADMIN, ...env } },
    );
    const server = followServer(child, 240_000);
    try {
      const url = await server.url;
      const chat = async () =>
        fetch(`${url}/v1/chat/completions`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization: `Bearer ${ADMIN}` },
          body: JSON.stringify({
            model: 'chat',
            messages: [{ role: 'user', content: 'hi' }],
            max_tokens: 4,
            temperature: 0,
          }),
        });
      const first = await chat();
      assert.equal(first.status, 200, await first.clone().text());
      const body = (await first.json()) as {
        choices: { message: { content: string } }[];
        usage: { completion_tokens: number };
      };
      assert.ok(body.usage.completion_tokens > 0);

      const load = (source: string) =>
        fetch(`${url}/admin/models`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization: `Bearer ${ADMIN}` },
          body: JSON.stringify({ name: 'extra', source }),
        }).then(async (r) => ({
          status: r.status,
          error: ((await r.json()) as { error: { code: string; message: string } }).error,
        }));
      const scheme = await load('s3://bucket/model.gguf');
      assert.deepEqual([scheme.status, scheme.error.code], [400, 'unsupported_model_source']);
      assert.match(scheme.error.message, /hf:\/\//);
      const notFound = await load('hf://org/nothing/model.gguf');
      assert.deepEqual([notFound.status, notFound.error.code], [400, 'model_source_not_found']);
      hub.fault('org/page/page.gguf', { kind: 'html' });
      const html = await load('hf://org/page/page.gguf');
      assert.deepEqual([html.status, html.error.code], [400, 'model_source_not_a_file']);
      assert.match(html.error.message, /HTML page/);

      const models = (await (
        await fetch(`${url}/admin/models`, { headers: { authorization: `Bearer ${ADMIN}` } })
      ).json()) as { models: { name: string; state: string; versions: { reason?: string }[] }[] };
      const gone = models.models.find((m) => m.name === 'gone');
      assert.equal(gone?.state, 'failed');
      assert.match(JSON.stringify(gone), /not found/);
      assert.equal((await chat()).status, 200, 'the server still serves');
    } catch (err) {
      (err as Error).message += `\n${server.output()}`;
      throw err;
    } finally {
      if (child.exitCode === null) assert.equal(await stopServer(child), 0);
    }
  });
});
