import { strict as assert } from 'node:assert';
import { rmSync } from 'node:fs';
import { NucleusServer } from '@nucleus/core';
import { tempDir } from '../helpers/paths.js';
import { writePlugin } from '../helpers/plugin-fixtures.js';
import { pluginDir } from './helpers.js';

const ADMIN = 'admin-key-0123456789';
const TRACE_ID = '0af7651916cd43dd8448eb211c80319c';
const PARENT = `00-${TRACE_ID}-b7ad6b7169203331-01`;

type Line = Record<string, unknown> & { msg?: string; level?: string };

/** A server whose JSON log lines are kept in memory. */
async function serverWithLogs(
  folders: string[],
  config: Record<string, unknown> = {},
): Promise<{ server: NucleusServer; lines: Line[] }> {
  const lines: Line[] = [];
  const server = await NucleusServer.start({
    env: { NUCLEUS_ADMIN_KEY: ADMIN },
    pluginFolders: [],
    nodeModules: [],
    logDestination: { write: (s: string) => void lines.push(JSON.parse(s) as Line) },
    cli: {
      'server.host': '127.0.0.1',
      'server.port': 0,
      'plugins.watch': false,
      'logging.level': 'info',
      'plugins.dirs': folders,
      ...config,
    },
  });
  return { server, lines };
}

describe('request logging', () => {
  let folder: string;
  before(() => {
    folder = tempDir('logging');
    writePlugin(folder, {
      id: 'chatty',
      activate: `
        ctx.contribute(ExtensionPoints.routes, { method: 'POST', path: '/chatty/echo', access: 'public', handler: (http) => {
          http.state.log.info({ prompt: http.request.body.prompt, outputs: ['the secret answer'], model: 'm' }, 'echoing');
          http.state.log.debug({ step: 1 }, 'debug detail');
          ctx.logger.debug({ requestId: http.state.requestId }, 'plugin debug');
          return { ok: true };
        } });
        ctx.contribute(ExtensionPoints.routes, { method: 'GET', path: '/chatty/crash', access: 'public', handler: () => { throw new Error('kaput'); } });`,
    });
  });
  after(() => rmSync(folder, { recursive: true, force: true }));

  describe('with the tracing plugin', () => {
    let server: NucleusServer;
    let lines: Line[];
    before(async () => {
      ({ server, lines } = await serverWithLogs([folder, pluginDir('tracing')]));
    });
    after(async () => {
      await server.stop();
    });
    const post = (headers: Record<string, string> = {}) =>
      fetch(`${server.url}/chatty/echo`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...headers },
        body: JSON.stringify({ prompt: 'my private question' }),
      });

    it('puts the request id and the caller’s trace id on every line, with the server span id, and redacts payloads', async () => {
      const res = await post({ 'x-request-id': 'req-1', traceparent: PARENT });
      assert.equal(res.status, 200);
      const traceparent = res.headers.get('traceparent') ?? '';
      assert.match(
        traceparent,
        new RegExp(`^00-${TRACE_ID}-[0-9a-f]{16}-01$`),
        'the response continues the caller’s trace',
      );
      const line = lines.find((l) => l.msg === 'echoing');
      assert.ok(line, 'the route logged');
      assert.equal(line.requestId, 'req-1');
      assert.equal(line.traceId, TRACE_ID);
      assert.equal(line.spanId, traceparent.split('-')[2]);
      assert.notEqual(line.spanId, 'b7ad6b7169203331');
      assert.equal(line.prompt, '[redacted]');
      assert.equal(line.outputs, '[redacted]');
      assert.equal(line.model, 'm');
      assert.equal(JSON.stringify(lines).includes('my private question'), false);
      assert.equal(
        lines.some((l) => l.msg === 'debug detail'),
        false,
        'debug is off at level info',
      );
    });

    it('gives a request without traceparent a fresh trace id, and error lines carry both ids', async () => {
      const res = await fetch(`${server.url}/chatty/crash`, { headers: { 'x-request-id': 'req-2' } });
      assert.equal(res.status, 500);
      const line = lines.find((l) => l.msg === 'request failed' && l.requestId === 'req-2');
      assert.ok(line);
      assert.match(String(line.traceId), /^[0-9a-f]{32}$/);
      assert.equal(res.headers.get('traceparent')?.split('-')[1], line.traceId);
    });

    it('changes the log level at run time through PATCH /admin/config', async () => {
      const patch = (level: string) =>
        fetch(`${server.url}/admin/config`, {
          method: 'PATCH',
          headers: { 'content-type': 'application/json', authorization: `Bearer ${ADMIN}` },
          body: JSON.stringify({ logging: { level } }),
        });
      assert.equal((await patch('debug')).status, 200);
      try {
        assert.equal((await post({ 'x-request-id': 'req-3' })).status, 200);
        const detail = lines.find((l) => l.msg === 'debug detail' && l.requestId === 'req-3');
        assert.ok(detail, 'a route’s debug line appears');
        assert.equal(detail.level, 'debug');
        const done = lines.find((l) => l.msg === 'request completed' && l.requestId === 'req-3');
        assert.ok(done, 'the server logs each request at debug');
        assert.deepEqual(
          { route: done.route, status: done.status, traced: typeof done.traceId },
          { route: '/chatty/echo', status: 200, traced: 'string' },
        );
        assert.equal(done.body, undefined, 'no body while payloads are not logged');
        assert.ok(
          lines.some((l) => l.msg === 'plugin debug' && l.plugin === 'chatty'),
          'a plugin logger made at activation follows the level too',
        );
      } finally {
        assert.equal((await patch('warn')).status, 200);
      }
      const before = lines.length;
      assert.equal((await post({ 'x-request-id': 'req-4' })).status, 200);
      assert.equal(
        lines.slice(before).some((l) => l.requestId === 'req-4'),
        false,
        'info lines are gone at level warn',
      );
    });
  });

  describe('with logging.logPayloads and no tracing plugin', () => {
    it('logs payloads as they are, and still takes the trace id from traceparent', async () => {
      const { server, lines } = await serverWithLogs([folder], {
        'logging.logPayloads': true,
        'logging.level': 'debug',
      });
      try {
        const res = await fetch(`${server.url}/chatty/echo`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'x-request-id': 'req-5', traceparent: PARENT },
          body: JSON.stringify({ prompt: 'visible question' }),
        });
        assert.equal(res.status, 200);
        const line = lines.find((l) => l.msg === 'echoing')!;
        assert.deepEqual(
          { prompt: line.prompt, outputs: line.outputs, traceId: line.traceId, spanId: line.spanId },
          { prompt: 'visible question', outputs: ['the secret answer'], traceId: TRACE_ID, spanId: undefined },
        );
        const done = lines.find((l) => l.msg === 'request completed' && l.requestId === 'req-5')!;
        assert.deepEqual(done.body, { prompt: 'visible question' });
      } finally {
        await server.stop();
      }
    });
  });
});
