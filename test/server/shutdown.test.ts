import { strict as assert } from 'node:assert';
import { rmSync } from 'node:fs';
import { Agent, request, type IncomingHttpHeaders } from 'node:http';
import { NucleusServer } from '@nucleus/core';
import { tempDir } from '../helpers/paths.js';
import { writePlugin } from '../helpers/plugin-fixtures.js';

function get(
  url: string,
  agent: Agent | false,
): Promise<{ status: number; body: string; headers: IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    request(url, { agent }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }));
    })
      .on('error', reject)
      .end();
  });
}

describe('graceful shutdown', () => {
  it('with server.drainDelayMs, keeps answering /ready 503 on a kept-alive connection before it closes', async () => {
    const server = await NucleusServer.start({
      env: {},
      pluginFolders: [],
      nodeModules: [],
      builtinModels: false,
      cli: { 'server.port': 0, 'server.drainDelayMs': 600, 'plugins.watch': false, 'logging.level': 'silent' },
    });
    const agent = new Agent({ keepAlive: true });
    try {
      assert.equal((await get(`${server.url}/ready`, agent)).status, 200);
      const stopping = server.stop();
      // Idle, the kept-alive connection stays open through the delay: a balancer's next check on it sees 503.
      await new Promise((r) => setTimeout(r, 300));
      const check = await get(`${server.url}/ready`, agent);
      assert.equal(check.status, 503);
      assert.equal(check.headers.connection, 'close');
      await stopping;
      await assert.rejects(get(`${server.url}/ready`, false), /ECONNREFUSED/);
    } finally {
      agent.destroy();
    }
  });

  it('finishes requests in flight, refuses new ones with 503, flushes exporters, then deactivates plugins', async () => {
    const folder = tempDir('shutdown');
    const log: string[] = [];
    (globalThis as Record<string, unknown>).__shutdownLog = log;
    writePlugin(folder, {
      id: 'slow',
      activate: `const log = globalThis.__shutdownLog;
        ctx.contribute(ExtensionPoints.routes, { method: 'GET', path: '/slow', access: 'public',
          handler: async () => { await new Promise((r) => setTimeout(r, 300)); log.push('slow answered'); return { done: true }; } });
        ctx.contribute(ExtensionPoints.exporter, { name: 'recorder', flush: async () => { log.push('flushed'); } });`,
      deactivate: `globalThis.__shutdownLog.push('deactivated');`,
    });
    const server = await NucleusServer.start({
      env: {},
      pluginFolders: [folder],
      nodeModules: [],
      cli: { 'server.port': 0, 'plugins.watch': false, 'logging.level': 'silent' },
    });
    const agent = new Agent({ keepAlive: true });
    try {
      const inflight = get(`${server.url}/slow`, agent);
      await new Promise((r) => setTimeout(r, 50));
      const stopping = server.stop().then(() => log.push('stopped'));
      // On a connection of its own, while the first one still runs.
      const late = get(`${server.url}/slow`, false);
      const first = await inflight;
      assert.equal(first.status, 200);
      assert.equal(first.headers.connection, 'close', 'a kept-alive connection is not kept once the server drains');
      const second = await late;
      assert.equal(second.status, 503);
      assert.equal(JSON.parse(second.body).error.code, 'server_shutting_down');
      await stopping;
      assert.deepEqual(log, ['slow answered', 'flushed', 'deactivated', 'stopped']);
    } finally {
      agent.destroy();
      rmSync(folder, { recursive: true, force: true });
    }
  });

  it('keeps listening while it drains: new connections and idle kept-alive ones get 503 with Retry-After and Connection: close, /ready says stopping, /health is ok; then the port closes', async () => {
    const folder = tempDir('shutdown-drain');
    const gate: { entered?: () => void; release?: () => void } = {};
    (globalThis as Record<string, unknown>).__drainGate = gate;
    writePlugin(folder, {
      id: 'gated',
      activate: `const gate = globalThis.__drainGate;
        ctx.contribute(ExtensionPoints.routes, { method: 'GET', path: '/gated', access: 'public',
          handler: async () => { await new Promise((r) => { gate.release = r; gate.entered(); }); return { done: true }; } });`,
    });
    const server = await NucleusServer.start({
      env: {},
      pluginFolders: [folder],
      nodeModules: [],
      cli: { 'server.port': 0, 'plugins.watch': false, 'logging.level': 'silent' },
    });
    const idle = new Agent({ keepAlive: true, maxSockets: 1 });
    try {
      // A kept-alive connection, idle when the server starts to stop.
      assert.equal((await get(`${server.url}/health`, idle)).status, 200);
      const entered = new Promise<void>((resolve) => (gate.entered = resolve));
      const inflight = get(`${server.url}/gated`, false);
      await entered;
      let stopped = false;
      const stopping = server.stop().then(() => (stopped = true));
      for (const agent of [false, idle] as const) {
        const refused = await get(`${server.url}/gated`, agent);
        assert.equal(refused.status, 503, refused.body);
        assert.equal(JSON.parse(refused.body).error.code, 'server_shutting_down');
        assert.equal(refused.headers['retry-after'], '1');
        assert.equal(refused.headers.connection, 'close');
      }
      const ready = await get(`${server.url}/ready`, false);
      assert.equal(ready.status, 503);
      assert.equal(JSON.parse(ready.body).error.code, 'server_stopping');
      assert.equal((await get(`${server.url}/health`, false)).status, 200);
      assert.equal(stopped, false, 'the server waits for the request in flight');
      gate.release!();
      const answered = await inflight;
      assert.equal(answered.status, 200);
      assert.deepEqual(JSON.parse(answered.body), { done: true });
      await stopping;
      await assert.rejects(get(`${server.url}/health`, false), /ECONNREFUSED/);
    } finally {
      idle.destroy();
      rmSync(folder, { recursive: true, force: true });
    }
  });
});
