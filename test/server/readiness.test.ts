import { strict as assert } from 'node:assert';
import { createServer } from 'node:net';
import { NucleusServer } from '@nucleus/core';

// A port free now, so that the probes can be asked while the server is still starting on it.
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

describe('readiness while the server starts, serves and stops', () => {
  it('answers /livez 200 and /ready, /readyz 503 starting while models load; 200 once started; 503 stopping', async () => {
    const port = await freePort();
    const starting = NucleusServer.start({
      env: {},
      builtinModels: true,
      cli: { 'server.host': '127.0.0.1', 'server.port': port, 'plugins.watch': false, 'logging.level': 'silent' },
    });
    let started = false;
    void starting.then(() => (started = true)).catch(() => undefined);
    const url = `http://127.0.0.1:${port}`;
    const seen: { live: number; ready: number; readyz: number; other: number; status: string }[] = [];
    // Bounded: polls until the start has finished, 2000 times at most.
    for (let i = 0; i < 2000 && !started; i++) {
      const get = (path: string) => fetch(`${url}${path}`).catch(() => undefined);
      const [live, ready, readyz, other] = await Promise.all([
        get('/livez'),
        get('/ready'),
        get('/readyz'),
        get('/admin/plugins'),
      ]);
      if (started) break;
      if (live && ready && readyz && other) {
        const body = (await ready.json()) as { status: string };
        seen.push({
          live: live.status,
          ready: ready.status,
          readyz: readyz.status,
          other: other.status,
          status: body.status,
        });
      }
      await new Promise((r) => setTimeout(r, 5));
    }
    const server = await starting;
    try {
      assert.ok(seen.length > 0, 'the probes answered while the server was starting');
      for (const s of seen) assert.deepEqual(s, { live: 200, ready: 503, readyz: 503, other: 503, status: 'starting' });
      const ready = await fetch(`${url}/readyz`);
      assert.deepEqual([ready.status, ((await ready.json()) as { status: string }).status], [200, 'ready']);
    } finally {
      const stopping = server.stop();
      const ready = await fetch(`${url}/ready`).catch(() => undefined);
      await stopping;
      if (ready) assert.equal(ready.status, 503);
    }
  });
});
