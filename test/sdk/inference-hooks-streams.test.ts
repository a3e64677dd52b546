import { strict as assert } from 'node:assert';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  ExtensionPoints,
  InferenceHooks,
  NucleusError,
  SseStream,
  type ExtensionPointView,
  type ModelRouter,
  type RoutedOutcome,
  type RouteContext,
} from '@nucleus/sdk';
import { pointOf } from '../helpers/extension-point.js';

// A router judging versions (a canary) must hear how a streamed answer ended, not only that its headers went out.

describe('InferenceHooks: the outcome of streamed answers', () => {
  const outcomes: RoutedOutcome[] = [];
  const router: ModelRouter = {
    name: 'judge',
    route: () => ({ model: 'm', version: '2' }),
    observe: (o) => void outcomes.push(o),
  };
  const hooks = new InferenceHooks({
    extensionPoint: <T>(point: unknown) =>
      (point === ExtensionPoints.router
        ? pointOf('router', 'test', [router])
        : pointOf('hooks', 'test', [])) as unknown as ExtensionPointView<T>,
  });
  let server: Server;
  let url = '';

  before(async () => {
    // A route that streams two events, then ends with an error event (`/fail`) or cleanly.
    server = createServer((req, res) => {
      const ctx = { res, state: {}, headers: req.headers, set: (k: string, v: string) => res.setHeader(k, v) };
      void hooks.run(
        { model: 'm', body: {} },
        req.headers,
        async () => {
          const sse = SseStream.open(ctx as unknown as RouteContext);
          await sse.send({ token: 'a' });
          if (req.url === '/fail') await sse.error(new NucleusError(503, 'worker_died', 'the worker died mid-stream'));
          else await sse.send('[DONE]');
          sse.end();
          return undefined;
        },
        ctx,
      );
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => new Promise((resolve) => server.close(resolve)));

  it('reports a stream that ended with an error event as that error, and a clean one as 200', async () => {
    for (const path of ['/fail', '/ok']) {
      const res = await fetch(`${url}${path}`);
      assert.equal(res.status, 200, 'a stream is 200 once its headers are out');
      const text = await res.text();
      assert.equal(text.includes('event: error'), path === '/fail', text);
    }
    // Bounded: the router hears of each request just after its answer ends.
    for (let i = 0; i < 100 && outcomes.length < 2; i++) await new Promise((r) => setTimeout(r, 5));
    assert.deepEqual(
      outcomes.map((o) => [o.model, o.version, o.status]),
      [
        ['m', '2', 503],
        ['m', '2', 200],
      ],
    );
  });
});
