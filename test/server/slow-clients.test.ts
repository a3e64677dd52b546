import { strict as assert } from 'node:assert';
import { connect, type Socket } from 'node:net';
import { startWhoamiServer } from '../helpers/secure-server.js';

/** A raw connection to the server and everything it sent back, until it closed. */
async function open(url: string): Promise<{ socket: Socket; received: () => string; closed: Promise<void> }> {
  const { hostname, port } = new URL(url);
  const socket = connect(Number(port), hostname);
  let text = '';
  socket.on('data', (d: Buffer) => (text += d.toString()));
  socket.on('error', () => {});
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  await new Promise((resolve) => socket.once('connect', resolve));
  return { socket, received: () => text, closed };
}

/** Sends a byte every `everyMs` until the connection closes or `bytes` were sent; how many were sent. */
async function trickle(socket: Socket, bytes: number, everyMs: number): Promise<number> {
  let sent = 0;
  while (sent < bytes && !socket.destroyed && socket.writable) {
    socket.write('1');
    sent++;
    await new Promise((r) => setTimeout(r, everyMs));
  }
  return sent;
}

describe('slow clients and connection caps', () => {
  it('answers 408 and closes the connection of a body that stalls (server.bodyIdleTimeoutMs)', async () => {
    const { server, stop } = await startWhoamiServer({ 'server.bodyIdleTimeoutMs': 300 });
    try {
      const { socket, received, closed } = await open(server.url);
      socket.write(
        'POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"a"',
      );
      await closed;
      assert.match(received(), /^HTTP\/1\.1 408 /);
      assert.match(received(), /"code":"request_timeout"/);
      assert.match(received(), /server\.bodyIdleTimeoutMs/);

      // A body sent whole leaves its kept-alive connection as it was, however long the next request takes to come.
      const kept = await open(server.url);
      kept.socket.write(
        'POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 7\r\n\r\n{"a":1}',
      );
      for (let i = 0; i < 100 && !/\r\n\r\n.*\}$/s.test(kept.received()); i++)
        await new Promise((r) => setTimeout(r, 20));
      assert.match(kept.received(), /^HTTP\/1\.1 200 /);
      await new Promise((r) => setTimeout(r, 600));
      kept.socket.write('GET /whoami HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
      await kept.closed;
      assert.equal(kept.received().match(/HTTP\/1\.1 200 /g)?.length, 2, 'both requests answered on one connection');
    } finally {
      await stop();
    }
  });

  it('ends a body trickled a byte at a time, never pausing long, at server.requestTimeoutMs', async () => {
    const { server, stop } = await startWhoamiServer({
      'server.requestTimeoutMs': 1500,
      'server.headersTimeoutMs': 1000,
      'server.bodyIdleTimeoutMs': 1000,
    });
    try {
      const { socket, received, closed } = await open(server.url);
      socket.write('POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n');
      // 1000 bytes at one per 50 ms would take 50 s; the server ends it long before.
      const sent = await trickle(socket, 1000, 50);
      await closed;
      assert.ok(sent < 1000, `the connection ended after ${sent} bytes, before the body was complete`);
      assert.ok(received() === '' || /^HTTP\/1\.1 408 /.test(received()), `answered ${received().slice(0, 40)}`);
    } finally {
      await stop();
    }
  });

  it('closes a connection that never finishes its headers (server.headersTimeoutMs)', async () => {
    const { server, stop } = await startWhoamiServer({ 'server.headersTimeoutMs': 500 });
    try {
      const { socket, received, closed } = await open(server.url);
      socket.write('GET /health HTTP/1.1\r\nHost: x\r\n');
      const sent = await trickle(socket, 1000, 50);
      await closed;
      assert.ok(sent < 1000);
      assert.ok(received() === '' || /^HTTP\/1\.1 408 /.test(received()));
    } finally {
      await stop();
    }
  });

  it('closes connections past server.maxConnections as they are accepted; the ones before keep working', async () => {
    const { server, stop } = await startWhoamiServer({ 'server.maxConnections': 2 });
    const sockets: Socket[] = [];
    try {
      const first = await open(server.url);
      const second = await open(server.url);
      sockets.push(first.socket, second.socket);
      const third = await open(server.url);
      sockets.push(third.socket);
      third.socket.write('GET /health HTTP/1.1\r\nHost: x\r\n\r\n');
      await third.closed;
      assert.equal(third.received(), '', 'the connection past the cap gets nothing');
      first.socket.write('GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
      await first.closed;
      assert.match(first.received(), /^HTTP\/1\.1 200 /);
    } finally {
      for (const s of sockets) s.destroy();
      await stop();
    }
  });
});
