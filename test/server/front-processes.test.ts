import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { request } from 'node:http';
import { availableParallelism } from 'node:os';
import { dirname } from 'node:path';
import { ConfigError, loadConfig } from '@nucleus/core/kernel/config';
import { frontProcessCount } from '@nucleus/core/internal/kernel/process-group';
import { builtinModel } from '../engine/engine-fixtures.js';
import { followServer, stopServer, type ServerChild } from '../helpers/server-child.js';
import { CLI, REPO_ROOT } from '../helpers/paths.js';

const MODEL = 'mlp';
const ADMIN_KEY = 'front-processes-admin-key';
const AUTH = { authorization: `Bearer ${ADMIN_KEY}` };

/** `nucleus serve` with two front processes on a free loopback port, serving one model, logging JSON at debug. */
function serveTwo(modelDir: string): ChildProcess {
  return spawn(
    process.execPath,
    [
      CLI,
      'serve',
      '--host',
      '127.0.0.1',
      '--port',
      '0',
      '--no-watch',
      '--set',
      'server.processes=2',
      '--set',
      'logging.level=debug',
      '--model',
      `${MODEL}=${modelDir}`,
    ],
    {
      cwd: REPO_ROOT,
      env: { PATH: process.env.PATH ?? '', NUCLEUS_LOGGING_FORMAT: 'json', NUCLEUS_ADMIN_KEY: ADMIN_KEY },
    },
  );
}

function infer(url: string, row: number[]): Promise<Response> {
  return fetch(`${url}/v2/models/${MODEL}/infer`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...AUTH },
    body: JSON.stringify({ inputs: [{ name: 'input', shape: [1, 4], datatype: 'FP32', data: row }] }),
  });
}

/** The pids that wrote JSON log lines matching `msg`. */
function pidsLogging(output: string, msg: string): Set<number> {
  const pids = new Set<number>();
  for (const line of output.split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      const entry = JSON.parse(line) as { msg?: string; pid?: number };
      if (entry.msg === msg && typeof entry.pid === 'number') pids.add(entry.pid);
    } catch {
      // Not a log line.
    }
  }
  return pids;
}

/**
 * An inference request whose body is sent in two halves `gapMs` apart, on a connection of its own: it is in flight
 * (its body half read) for that long. Resolves with the status.
 */
function slowInfer(url: string, gapMs: number, started: () => void): Promise<number> {
  const body = Buffer.from(
    JSON.stringify({ inputs: [{ name: 'input', shape: [1, 4], datatype: 'FP32', data: [1, 2, 3, 4] }] }),
  );
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: hostname,
        port,
        method: 'POST',
        path: `/v2/models/${MODEL}/infer`,
        agent: false,
        headers: { 'content-type': 'application/json', 'content-length': body.byteLength, ...AUTH },
      },
      (res) => {
        res.resume();
        res.once('end', () => resolve(res.statusCode ?? 0));
      },
    );
    req.once('error', reject);
    req.write(body.subarray(0, 10));
    req.once('socket', (s) =>
      s.once('connect', () => {
        started();
        setTimeout(() => req.end(body.subarray(10)), gapMs);
      }),
    );
  });
}

describe('server.processes: 2 (node:cluster front processes on one port)', function () {
  this.timeout(180_000);
  let child: ChildProcess;
  let server: ServerChild;
  let url: string;
  before(async () => {
    child = serveTwo(dirname((await builtinModel('mlp-classifier')).dir));
    server = followServer(child, 150_000);
    url = await server.url;
  });

  after(async () => {
    if (child.exitCode === null && child.signalCode === null) await stopServer(child);
  });

  it('announces once, after both processes serve, with their pids', () => {
    const line = server
      .output()
      .split('\n')
      .find((l) => l.includes('nucleus listening on'))!;
    const announced = JSON.parse(line) as { processes: number; pids: number[] };
    assert.equal(announced.processes, 2);
    assert.equal(new Set(announced.pids).size, 2, line);
  });

  it('answers requests from both processes, on the same port', async () => {
    // Connections are handed to the processes in turn: a fresh connection per request reaches both.
    for (let i = 0; i < 8; i++) {
      const res = await infer(url, [i, 1, 2, 3]);
      assert.equal(res.status, 200, await res.clone().text());
      const body = (await res.json()) as { outputs: { shape: number[] }[] };
      assert.deepEqual(body.outputs[0]!.shape[0], 1);
    }
    const ready = pidsLogging(server.output(), 'request completed');
    assert.ok(ready.size >= 2, `request log lines from ${[...ready].join(', ')}:\n${server.output().slice(-2000)}`);
  });

  it('sums the processes’ counters at every scrape, whichever process takes it', async () => {
    const successes = async (): Promise<number> => {
      const text = await (await fetch(`${url}/metrics`)).text();
      const m = new RegExp(`request_success_total\\{[^}]*model_name="${MODEL}"[^}]*\\} (\\d+)`).exec(text);
      assert.ok(m, `no request_success_total for ${MODEL} in:\n${text.slice(0, 3000)}`);
      return Number(m[1]);
    };
    const before = await successes();
    for (let i = 0; i < 6; i++) assert.equal((await infer(url, [9, i, 2, 3])).status, 200);
    // Several scrapes land on both processes; each must see all six new requests.
    const seen = new Set<number>();
    for (let i = 0; i < 4; i++) seen.add((await successes()) - before);
    assert.deepEqual([...seen], [6]);
  });

  it('refuses admin operations that would change one process only, with 409 multi_process_admin', async () => {
    const reload = await fetch(`${url}/admin/plugins/stats/reload`, { method: 'POST', headers: AUTH });
    assert.equal(reload.status, 409);
    const body = (await reload.json()) as { error: { code: string; message: string } };
    assert.equal(body.error.code, 'multi_process_admin');
    assert.match(body.error.message, /server\.processes/);
    const unload = await fetch(`${url}/v2/repository/models/${MODEL}/unload`, { method: 'POST', headers: AUTH });
    assert.equal(unload.status, 409);
    // Reads still answer, and the model is still served.
    assert.equal((await fetch(`${url}/admin/plugins`, { headers: AUTH })).status, 200);
    assert.equal((await fetch(`${url}/v2/repository/index`, { method: 'POST', headers: AUTH })).status, 200);
    assert.equal((await infer(url, [1, 1, 1, 1])).status, 200);
  });

  it('on SIGTERM, lets requests in flight in both processes finish, then exits 0', async () => {
    let started = 0;
    const inFlight: Promise<number>[] = [];
    const allStarted = new Promise<void>((resolve) => {
      for (let i = 0; i < 4; i++)
        inFlight.push(
          slowInfer(url, 1500, () => {
            if (++started === 4) resolve();
          }),
        );
    });
    await allStarted;
    // Let the servers read the first half of every body before the signal.
    await new Promise((r) => setTimeout(r, 300));
    const code = stopServer(child);
    assert.deepEqual(await Promise.all(inFlight), [200, 200, 200, 200]);
    assert.equal(await code, 0, server.output().slice(-3000));
    const drained = pidsLogging(server.output(), 'shutting down');
    assert.equal(drained.size, 2, `shutting down logged by ${[...drained].join(', ')}`);
  });
});

describe('server.processes: 2 with a bad config', function () {
  this.timeout(120_000);

  it('exits 2 with the config error, as a single process does, instead of waiting', async () => {
    const child = spawn(
      process.execPath,
      [CLI, 'serve', '--port', '0', '--no-watch', '--set', 'server.processes=2', '--set', 'queue.highWatermark=abc'],
      { cwd: REPO_ROOT, env: { PATH: process.env.PATH ?? '' } },
    );
    let err = '';
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), 90_000);
    const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
    clearTimeout(timer);
    assert.equal(code, 2, err);
    assert.match(err, /queue\.highWatermark must be an integer/);
  });
});

describe('server.processes in the config', () => {
  it('takes a count or auto (the cores this process may use) and refuses anything else', () => {
    assert.equal(loadConfig({ cli: { 'server.processes': '3' } }).config.server.processes, 3);
    assert.equal(
      frontProcessCount(loadConfig({ cli: { 'server.processes': 'auto' } }).config.server.processes),
      availableParallelism(),
    );
    assert.equal(frontProcessCount(loadConfig({}).config.server.processes), 1);
    for (const bad of ['0', 'many', '1.5'])
      assert.throws(() => loadConfig({ cli: { 'server.processes': bad } }), ConfigError, bad);
  });
});
