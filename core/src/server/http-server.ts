import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { ExtensionPointView, Hooks } from '@nucleus/sdk';
import { badRequest, ExtensionPoints, NucleusError, unavailable } from '@nucleus/sdk';
import { bodyParser } from '@koa/bodyparser';
import Koa, { type Context, type Next } from 'koa';
import type { Kernel } from '../kernel/kernel.js';
import { Authenticator, findKey, holderOf, type ApiKey } from './auth.js';
import { answerClientError, answerConnect } from './client-error.js';
import { errorMiddleware } from './error-middleware.js';
import { decodeContent, INFERENCE_HEADER_LENGTH, parseInferenceHeader, splitInferenceBody } from './binary-body.js';
import { jsonNestsDeeperThan, jsonTooDeep } from './json-depth.js';
import { BodyTooLargeError, JsonParserPool, JsonSyntaxError, readBody } from './json-offload.js';
import { kernelRoutes } from './kernel-routes.js';
import { requestIdMiddleware } from './request-id.js';
import { requestLoggerMiddleware } from './request-logger.js';
import { RouteTable } from './route-table.js';
import { WsHub } from './ws-hub.js';
import { toListenError } from './listen-error.js';

/** The liveness and readiness routes, which answer while the server starts and while it drains. */
const PROBES = new Set(['/health', '/livez', '/ready', '/readyz']);

/** Runs the hooks contributed for one moment of a request, highest priority outermost, then `next`. */
function hookChain(point: ExtensionPointView<Hooks>, moment: 'preParsing' | 'onRequest') {
  return async (ctx: Context, next: Next): Promise<void> => {
    const chain = point.list().filter((c) => c.value[moment]);
    let i = 0;
    const step = async (): Promise<void> => {
      const c = chain[i++];
      if (!c) return next();
      await point.use(c, (h: Hooks) => h[moment]!(ctx, step));
    };
    await step();
  };
}

/**
 * The HTTP and WebSocket front of a kernel: request ids, the error body, the key check and `preParsing` hooks, JSON
 * parsing, `onRequest` hooks, then the route table (kernel routes and plugin routes).
 */
export class HttpServer {
  readonly app = new Koa();
  readonly routes: RouteTable;
  private server?: Server;
  private ws?: WsHub;
  private parsers?: JsonParserPool;
  // Set once close() begins: requests from then on are refused; those in `inFlight` came before.
  private draining = false;
  private readonly inFlight = new Set<ServerResponse>();
  private onDrained?: () => void;

  constructor(private readonly kernel: Kernel) {
    const { events, logger, config } = kernel;
    const auth = new Authenticator(
      () => this.apiKeys(),
      () => config.get('cache.prefix.shareAcrossKeys'),
    );
    this.routes = new RouteTable(kernel.extensions.point(ExtensionPoints.routes), kernelRoutes(kernel), auth);
    const hooks = kernel.extensions.point(ExtensionPoints.hooks);

    this.app.proxy = false;
    // Koa's default prints every stream error's stack to stderr; a client that hangs up mid-stream is routine.
    this.app.on('error', (err: NodeJS.ErrnoException) => {
      const clientGone = err.code === 'EPIPE' || err.code === 'ECONNRESET' || err.code === 'ERR_STREAM_PREMATURE_CLOSE';
      if (clientGone) logger.debug({ code: err.code }, 'client closed the connection mid-response');
      else logger.warn({ err }, 'response stream error');
    });
    this.app.use(requestIdMiddleware);
    this.app.use(requestLoggerMiddleware(logger, () => config.get('logging.logPayloads')));
    this.app.use(async (ctx: Context, next: Next) => {
      const started = performance.now();
      const { requestId } = ctx.state as { requestId: string };
      // The key is looked up here, not only at the route, so the request's events say whose they are (/ws shows a
      // user key its own requests only).
      const tenant = auth.identify(ctx)?.tenancy.tenant;
      events.emit('request.start', { requestId, method: ctx.method, path: ctx.path, ...(tenant && { tenant }) });
      try {
        await next();
      } finally {
        const body = ctx.body as { error?: { code?: string } } | undefined;
        events.emit('request.end', {
          requestId,
          ...(tenant && { tenant }),
          method: ctx.method,
          path: ctx.path,
          route: (ctx.state.route as string | undefined) ?? 'unmatched',
          status: ctx.status,
          durationMs: performance.now() - started,
          ...(ctx.status >= 400 && body?.error?.code ? { errorCode: body.error.code } : {}),
        });
      }
    });
    this.app.use(errorMiddleware(logger));
    // HTTP/1.1 requires a Host header. Node's own check (turned off in listen()) answers a bare 400 with no body.
    this.app.use((ctx: Context, next: Next) => {
      if (ctx.req.httpVersion === '1.1' && !ctx.req.headers.host)
        throw badRequest('missing_host', 'an HTTP/1.1 request needs a Host header');
      return next();
    });
    this.app.use(async (ctx: Context, next: Next) => {
      // While draining for shutdown, requests arriving on new or kept-alive connections are refused, not queued, and
      // their connection is closed after the answer. /health and /ready answer as ever (/ready with 503: stopping).
      if (this.draining || kernel.health.report().status === 'stopping') {
        ctx.set('connection', 'close');
        if (PROBES.has(ctx.path)) return next();
        throw unavailable('server_shutting_down', 'the server is shutting down; retry against another instance', 1);
      }
      // While starting (plugins activating, models loading and warming up) only the probes answer, so that a load
      // balancer or Kubernetes sees a live process that is not ready yet.
      if (kernel.health.report().status === 'starting' && !PROBES.has(ctx.path))
        throw unavailable('server_starting', 'the server is starting: its models are loading; retry shortly', 1);
      await next();
    });
    // The key is checked, and the `preParsing` hooks (rate limits) run, before the body is read: a refused request
    // costs no read or parse of a body nobody will use. A request no route takes leaves its body unread as well (its
    // 404 or 405 needs none); an answer given before the body arrived closes the connection instead of draining it.
    const unrouted = new WeakSet<Context>();
    const preParsing = hookChain(hooks, 'preParsing');
    this.app.use(async (ctx: Context, next: Next) => {
      try {
        if (this.routes.authenticate(ctx)) await preParsing(ctx, next);
        else {
          unrouted.add(ctx);
          await next();
        }
      } finally {
        if (!ctx.req.complete && !ctx.headerSent) ctx.set('connection', 'close');
      }
    });
    const tooLarge = () =>
      Object.assign(
        new Error(`request body is larger than server.bodyLimitBytes (${config.get('server.bodyLimitBytes')} bytes)`),
        { status: 413, expose: true },
      );
    const read = async (ctx: Context, length: number | undefined, alignAt?: number): Promise<Uint8Array> => {
      try {
        return await readBody(ctx.req, length, config.get('server.bodyLimitBytes'), alignAt);
      } catch (err) {
        if (err instanceof BodyTooLargeError) {
          ctx.set('connection', 'close');
          throw tooLarge();
        }
        throw err;
      }
    };
    const v2Infer = (ctx: Context) => /^\/v2\/models\/.+\/infer$/.test(ctx.path);
    // KServe v2 binary tensor data: a JSON inference header, then raw tensor bytes. The header is parsed (on a worker
    // thread when large); the bytes after it stay where they were received, as `ctx.request.binaryData`, for the route
    // to view its tensors over.
    this.app.use(async (ctx: Context, next: Next) => {
      const declared = ctx.get(INFERENCE_HEADER_LENGTH);
      if (!declared || unrouted.has(ctx) || (ctx.method !== 'POST' && ctx.method !== 'PUT' && ctx.method !== 'PATCH'))
        return next();
      const contentLength = ctx.get('content-length');
      // The tensor bytes after the header land 8-byte aligned, so the route views them without a copy.
      const headerLength = Number(declared);
      const raw = await read(
        ctx,
        contentLength ? Number(contentLength) : undefined,
        Number.isSafeInteger(headerLength) ? headerLength : 0,
      );
      const body = await decodeContent(raw, ctx.get('content-encoding'), config.get('server.bodyLimitBytes'));
      const { header, binary } = splitInferenceBody(body, declared);
      const threshold = config.get('server.offloadJsonBytes');
      if (threshold && header.byteLength > threshold) {
        this.parsers ??= new JsonParserPool();
        try {
          // A copy of the header alone: posting a view would clone the whole body with it.
          ctx.request.body = await this.parsers.parse(header.slice(), v2Infer(ctx), config.get('server.jsonMaxDepth'));
        } catch (err) {
          if (err instanceof JsonSyntaxError)
            throw badRequest('invalid_json', `the JSON inference header is not valid JSON: ${err.message}`);
          throw err;
        }
      } else {
        const maxDepth = config.get('server.jsonMaxDepth');
        if (jsonNestsDeeperThan(header, maxDepth)) throw jsonTooDeep(maxDepth, 'JSON inference header');
        ctx.request.body = parseInferenceHeader(header);
      }
      (ctx.request as { binaryData?: Uint8Array }).binaryData = binary;
      await next();
    });
    // Large JSON bodies (a tensor as a list of numbers) are parsed on a worker thread: JSON.parse of a few MB would
    // hold the event loop for tens of ms per request. Bodies without a Content-Length or compressed take the usual path.
    this.app.use(async (ctx: Context, next: Next) => {
      const threshold = config.get('server.offloadJsonBytes');
      const length = Number(ctx.get('content-length'));
      const encoding = ctx.get('content-encoding').toLowerCase();
      if (
        ctx.request.body !== undefined ||
        unrouted.has(ctx) ||
        !threshold ||
        !(length > threshold) ||
        (encoding && encoding !== 'identity') ||
        !ctx.is('json') ||
        (ctx.method !== 'POST' && ctx.method !== 'PUT' && ctx.method !== 'PATCH')
      ) {
        return next();
      }
      const bytes = await read(ctx, length);
      this.parsers ??= new JsonParserPool();
      try {
        // Only v2 inference bodies get their `inputs[i].data` as typed arrays.
        ctx.request.body = await this.parsers.parse(bytes, v2Infer(ctx), config.get('server.jsonMaxDepth'));
      } catch (err) {
        if (err instanceof JsonSyntaxError)
          throw badRequest('invalid_json', `request body is not valid JSON: ${err.message}`);
        throw err;
      }
      await next();
    });
    const parseJson = bodyParser({
      enableTypes: ['json'],
      jsonLimit: config.get('server.bodyLimitBytes'),
      onError: (err: Error, ctx: Context) => {
        if ((err as { status?: number }).status === 413) throw tooLarge();
        // An encoding the body parser cannot undo (`br`, or `gzip, gzip`, a chain) is the client's media type.
        if ((err as { status?: number }).status === 415)
          throw new NucleusError(
            415,
            'unsupported_media_type',
            `request body has Content-Encoding '${ctx.get('content-encoding')}'; this server reads identity, gzip or deflate, applied once`,
          );
        throw badRequest('invalid_json', `request body is not valid JSON: ${err.message}`);
      },
    });
    this.app.use((ctx: Context, next: Next) => {
      if (unrouted.has(ctx) || ctx.request.body !== undefined) return next();
      return parseJson(ctx, async () => {
        // V8 parses any depth; what walks the value afterwards (schema checks) would overflow the stack.
        const raw = (ctx.request as { rawBody?: string }).rawBody;
        const maxDepth = config.get('server.jsonMaxDepth');
        if (raw && jsonNestsDeeperThan(raw, maxDepth)) throw jsonTooDeep(maxDepth);
        await next();
      });
    });
    this.app.use(hookChain(hooks, 'onRequest'));
    this.app.use(this.routes.middleware());
  }

  /** Starts listening; port 0 picks a free port. */
  async listen(host: string, port: number): Promise<{ host: string; port: number; url: string }> {
    const handle = this.app.callback();
    const server = createServer({ requireHostHeader: false }, (req, res) => {
      if (!this.draining) {
        this.inFlight.add(res);
        res.once('close', () => {
          this.inFlight.delete(res);
          if (this.inFlight.size === 0) this.onDrained?.();
        });
      }
      void handle(req, res);
    });
    server.requestTimeout = this.kernel.config.get('server.requestTimeoutMs');
    server.on('clientError', answerClientError);
    server.on('connect', answerConnect);
    this.ws = new WsHub(
      this.kernel.events,
      this.kernel.logger,
      (req) => {
        const keys = this.apiKeys();
        if (!keys.length) return { label: 'anonymous', admin: true };
        const header = req.headers.authorization ?? '';
        const token =
          /^Bearer\s+(.+)$/i.exec(header)?.[1]?.trim() ?? new URL(req.url ?? '/', 'http://x').searchParams.get('token');
        const key = findKey(keys, token);
        if (!key) return 'this socket needs an API key: send "Authorization: Bearer <key>" or ?token=<key>';
        const caller = holderOf(key, this.kernel.config.get('cache.prefix.shareAcrossKeys'));
        return { label: caller.label, admin: key.role === 'admin', tenant: caller.tenancy.tenant! };
      },
      this.kernel.extensions.point(ExtensionPoints.wsTopics),
      () => this.kernel.config.get('ws'),
    );
    this.ws.attach(server);
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err) => reject(toListenError(err, host, port)));
      server.listen(port, host, () => resolve());
    });
    this.server = server;
    const address = server.address() as AddressInfo;
    const shown = address.family === 'IPv6' ? `[${address.address}]` : address.address;
    return { host: address.address, port: address.port, url: `http://${shown}:${address.port}` };
  }

  /**
   * Drains, then stops: while the requests in flight finish, the listener stays open and every new request (on a
   * new or a kept-alive connection) is answered 503 with `Retry-After` and `Connection: close` — a client learns the
   * server is stopping instead of finding the port closed, and `/ready` reports it. Then the listener and the
   * connections close; after `graceMs` in all, the connections still open are closed. Resolves whether everything
   * finished in time.
   */
  async close(graceMs = Infinity): Promise<boolean> {
    this.draining = true;
    this.ws?.close();
    const server = this.server;
    if (!server) {
      await this.closeParsers();
      return true;
    }
    const deadline = performance.now() + graceMs;
    let timer: NodeJS.Timeout | undefined;
    // Answers still to come close their connection: a client must not send more on one that is about to close.
    for (const res of this.inFlight) if (!res.headersSent) res.setHeader('connection', 'close');
    const drained = await new Promise<boolean>((resolve) => {
      if (this.inFlight.size === 0) return resolve(true);
      this.onDrained = () => resolve(true);
      if (Number.isFinite(graceMs)) timer = setTimeout(() => resolve(false), graceMs);
    });
    clearTimeout(timer);
    this.onDrained = undefined;
    const finished = await new Promise<boolean>((resolve) => {
      server.close(() => resolve(true));
      server.closeIdleConnections();
      if (!drained) resolve(false);
      else if (Number.isFinite(graceMs))
        timer = setTimeout(() => resolve(false), Math.max(0, deadline - performance.now()));
    });
    clearTimeout(timer);
    if (!finished) server.closeAllConnections();
    await this.closeParsers();
    return finished;
  }

  private async closeParsers(): Promise<void> {
    const parsers = this.parsers;
    this.parsers = undefined;
    await parsers?.close();
  }

  private apiKeys(): ApiKey[] {
    const keys = [...this.kernel.config.get('auth.keys')];
    const adminKey = this.kernel.config.get('auth.adminKey');
    if (adminKey) keys.push({ key: adminKey, role: 'admin', name: 'admin' });
    return keys;
  }
}
