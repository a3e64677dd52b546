import { strict as assert } from 'node:assert';
import type { Server } from 'node:http';
import { connect } from 'node:net';
import { startWhoamiServer } from '../helpers/secure-server.js';

interface Line {
  level: string;
  msg: string;
  code?: string;
  err?: unknown;
}

async function until(check: () => boolean | Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 500; i++) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  assert.fail(`timed out waiting for ${what}`);
}

describe('shutdown: the last moment of draining', () => {
  it('answers a request on a connection accepted just before the listener closed, and logs the 503s at info without a stack', async () => {
    const lines: Line[] = [];
    const { server, stop } = await startWhoamiServer(
      { 'logging.level': 'info' },
      {
        write: (line) => void lines.push(JSON.parse(line) as Line),
      },
    );
    const listener = (server.http as unknown as { server: Server }).server;
    const { hostname, port } = new URL(server.url);
    const socket = connect(Number(port), hostname);
    let received = '';
    socket.on('data', (d: Buffer) => (received += d.toString()));
    const closed = new Promise<boolean>((resolve) => socket.once('close', resolve));
    socket.on('error', () => {});
    let stopping: Promise<void> | undefined;
    try {
      await until(
        () => new Promise<boolean>((resolve) => listener.getConnections((_err, n) => resolve(n > 0))),
        'the server to accept the connection',
      );
      // Nothing in flight: draining is over at once, and the listener closes.
      stopping = stop();
      await until(() => !listener.listening, 'the listener to close');
      socket.write('GET /whoami HTTP/1.1\r\nHost: x\r\n\r\n');
      const hadError = await closed;
      assert.equal(hadError, false, 'the connection was not reset');
      assert.match(received, /^HTTP\/1\.1 503 /);
      assert.match(received, /connection: close/i);
      assert.match(received, /"code":"server_shutting_down"/);
      await stopping;
    } finally {
      socket.destroy();
      await stopping;
    }
    const refusal = lines.find((l) => l.code === 'server_shutting_down');
    assert.ok(refusal, 'the 503 is logged');
    assert.equal(refusal.level, 'info');
    assert.equal(refusal.err, undefined, 'without a stack');
    assert.deepEqual(
      lines.filter((l) => l.level === 'error' || l.level === 'fatal').map((l) => l.msg),
      [],
      'nothing at error',
    );
  });
});
