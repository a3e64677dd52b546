import { strict as assert } from 'node:assert';
import { rmSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { NucleusServer } from '@nucleus/core';
import { tempDir } from '../helpers/paths.js';
import { writePlugin } from '../helpers/plugin-fixtures.js';

function get(url: string, agent: Agent): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    request(url, { agent }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    })
      .on('error', reject)
      .end();
  });
}

describe('graceful shutdown', () => {
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
    const server = await NucleusServer.start({ env: {}, pluginFolders: [folder], nodeModules: [], cli: { 'server.port': 0, 'plugins.watch': false, 'logging.level': 'silent' } });
    // One kept-alive socket: the second request waits on it and arrives while the server drains.
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const inflight = get(`${server.url}/slow`, agent);
      await new Promise((r) => setTimeout(r, 50));
      const stopping = server.stop().then(() => log.push('stopped'));
      const late = get(`${server.url}/slow`, agent);
      const first = await inflight;
      assert.equal(first.status, 200);
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
});
