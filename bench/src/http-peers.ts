#!/usr/bin/env node
// node bench/dist/http-peers.js node|koa: the HTTP suite's reference servers, each in a process of its own. They
// answer what Nucleus answers on the measured paths with nothing else: `GET /health` with `{"status":"ok"}`, and any
// POST by parsing its JSON body and sending it back as JSON. Prints `listening on <url>` once it listens.
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import Koa from 'koa';

const HEALTH = { status: 'ok' };

async function readJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return JSON.parse(Buffer.concat(chunks).toString('utf8'));
}

function bareNode() {
  return createServer((req, res) => {
    if (req.method === 'POST') {
      readJson(req).then(
        (body) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body)),
        () => res.writeHead(400).end(),
      );
    } else if (req.url === '/health') {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(HEALTH));
    } else {
      res.writeHead(404).end();
    }
  });
}

function bareKoa() {
  const app = new Koa();
  app.use(async (ctx) => {
    if (ctx.method === 'POST') ctx.body = await readJson(ctx.req);
    else if (ctx.path === '/health') ctx.body = HEALTH;
  });
  return createServer(app.callback());
}

const kind = process.argv[2];
if (kind !== 'node' && kind !== 'koa') {
  process.stderr.write('usage: http-peers node|koa\n');
  process.exit(2);
}
const server = kind === 'node' ? bareNode() : bareKoa();
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`listening on http://127.0.0.1:${(server.address() as AddressInfo).port}\n`);
});
process.once('SIGTERM', () => server.close(() => process.exit(0)));
