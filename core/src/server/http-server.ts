import { createServer, type IncomingMessage, type Server, type ServerOptions, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { Contribution, CredentialSource, ExtensionPointView, Hooks } from '@nucleus/sdk';
import { badRequest, ExtensionPoints, NucleusError, Services, unavailable } from '@nucleus/sdk';
import { bodyParser } from '@koa/bodyparser';
import Koa, { type Context, type Next } from 'koa';
import type { Kernel } from '../kernel/kernel.js';
import { Authenticator, callerFor, type ApiKey } from './auth.js';
import { answerClientError, answerConnect } from './client-error.js';
import { errorResponder } from './error-middleware.js';
import { decodeContent, INFERENCE_HEADER_LENGTH, parseInferenceHeader, splitInferenceBody } from './binary-body.js';
import { jsonNestsDeeperThan, jsonTooDeep } from './json-depth.js';
import { BodyTooLargeError, JsonParserPool, JsonSyntaxError, readBody } from './json-offload.js';
import { kernelRoutes } from './kernel-routes.js';
import { bodyParserReadError, parseStrictJson, SMALL_JSON_BYTES, smallJsonLength } from './small-json.js';
import { requestFront } from './request-front.js';
import { RequestLogger } from './request-logger.js';
import { RouteTable } from './route-table.js';
import { WsHub } from './ws-hub.js';
import { JwtVerifier } from './jwt-verifier.js';
import { ListenError, toListenError } from './listen-error.js';
import { heldUses } from './held-uses.js';
import { TlsCertificates, TlsConfigError } from './tls-certificates.js';

/** The liveness and readiness routes, which answer while the server starts and while it drains. */
const PROBES = new Set(['/health', '/livez', '/ready', '/readyz']);

/** The methods whose bodies are read (as the body parser's own default). */
const BODY_METHODS = new Set(['POST', 'PUT', 'PATCH']);

/**
 * At shutdown the listener closes once no connection has come for this long (a client in the middle of connecting),
 * or at the shutdown deadline.
 */
const QUIET_MS = 50;

/** Runs the hooks contributed for one moment of a request, highest priority outermost, then `next`. */
function hookChain(point: ExtensionPointView<Hooks>, moment: 'preParsing' | 'onRequest') {
  // The hooks that take part, worked out again only when a hook comes or goes rather than for every request.
  let taking: Contribution<Hooks>[] | undefined;
  point.onChange(() => (taking = undefined));
  // No async frame of its own per hook: each step returns the promise of the hook it runs.
  return (ctx: Context, next: () => Promise<void>): Promise<void> => {
    const chain = (taking ??= point.list().filter((c) => c.value[moment]));
    if (chain.length === 0) return next();
    let i = 0;
    const held = heldUses(ctx);
    const step = (): Promise<void> => {
      const c = chain[i++];
      if (!c) return next();
      return point.use(c, (h: Hooks) => h[moment]!(ctx, step), held) as Promise<void>;
    };
    return step();
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
  private lastAcceptedAt = -Infinity;
  /** Connections accepted so far (TCP, before any TLS handshake). */
  private accepted = 0;
  private tls?: TlsCertificates;
  private readonly auth: Authenticator;
  private keys?: { config: object; keys: readonly ApiKey[] };

  constructor(private readonly kernel: Kernel) {
    const { events, logger, config } = kernel;
    const jwt = JwtVerifier.fromConfig(config.get('auth.jwt'));
    const credentials = kernel.extensions.point(ExtensionPoints.credentials);
    // Asked for every request without a bearer key: the sources are listed again only when they change.
    let sources: { from: readonly Contribution<CredentialSource>[]; values: CredentialSource[] } | undefined;
    const credentialSources = () => {
      const listed = credentials.list();
      if (sources?.from !== listed) sources = { from: listed, values: listed.map((c) => c.value) };
      return sources.values;
    };
    const auth = new Authenticator(
      () => this.apiKeys(),
      () => config.get('cache.prefix.shareAcrossKeys'),
      {
        ...(jwt && { jwt }),
        certificates: () => config.get('auth.clientCertificates'),
        credentials: credentialSources,
      },
    );
    this.auth = auth;
    // Protocols served beside HTTP (gRPC) check their calls' keys exactly as the routes do.
    kernel.container.register(Services.auth, { useValue: auth.forCalls() });
    this.routes = new RouteTable(
      kernel.extensions.point(ExtensionPoints.routes),
      kernelRoutes(kernel),
      auth,
      kernel.processGroup.size,
    );
    // Registered before plugins activate (start() follows), so a plugin that documents the API finds it in `deps`.
    kernel.container.register(Services.routes, { useValue: this.routes.catalog() });
    const hooks = kernel.extensions.point(ExtensionPoints.hooks);

    this.app.proxy = false;
    // Koa's default prints every stream error's stack to stderr; a client that hangs up mid-stream is routine.
    this.app.on('error', (err: NodeJS.ErrnoException) => {
      const clientGone = err.code === 'EPIPE' || err.code === 'ECONNRESET' || err.code === 'ERR_STREAM_PREMATURE_CLOSE';
      if (clientGone) logger.debug({ code: err.code }, 'client closed the connection mid-response');
      else logger.warn({ err }, 'response stream error');
    });
    this.app.use(
      requestFront({
        events,
        logs: new RequestLogger(logger, () => config.get('logging.logPayloads')),
        auth,
        jwt: jwt !== undefined,
        errors: errorResponder(logger, kernel.extensions.point(ExtensionPoints.errorBody)),
        admit: (ctx) => this.admit(ctx),
      }),
    );
    const preParsing = hookChain(hooks, 'preParsing');
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
    const binaryBody = async (ctx: Context, next: Next): Promise<void> => {
      const declared = ctx.get(INFERENCE_HEADER_LENGTH);
      if (!declared) return next();
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
        this.parsers ??= new JsonParserPool(undefined, config.get('workers.niceness'));
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
    };
    // Large JSON bodies (a tensor as a list of numbers) are parsed on a worker thread: JSON.parse of a few MB would
    // hold the event loop for tens of ms per request. Bodies without a Content-Length or compressed take the usual path.
    const offloadedJson = async (ctx: Context, next: Next): Promise<void> => {
      const threshold = config.get('server.offloadJsonBytes');
      const length = Number(ctx.get('content-length'));
      const encoding = ctx.get('content-encoding').toLowerCase();
      if (
        ctx.request.body !== undefined ||
        !threshold ||
        !(length > threshold) ||
        (encoding && encoding !== 'identity') ||
        !ctx.is('json')
      ) {
        return next();
      }
      const bytes = await read(ctx, length);
      this.parsers ??= new JsonParserPool(undefined, config.get('workers.niceness'));
      try {
        // Only v2 inference bodies get their `inputs[i].data` as typed arrays.
        ctx.request.body = await this.parsers.parse(bytes, v2Infer(ctx), config.get('server.jsonMaxDepth'));
      } catch (err) {
        if (err instanceof JsonSyntaxError)
          throw badRequest('invalid_json', `request body is not valid JSON: ${err.message}`);
        throw err;
      }
      await next();
    };
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
    // V8 parses any depth; what walks the value afterwards (schema checks) would overflow the stack.
    const checkDepth = (raw: string | undefined): void => {
      const maxDepth = config.get('server.jsonMaxDepth');
      if (raw && jsonNestsDeeperThan(raw, maxDepth)) throw jsonTooDeep(maxDepth);
    };
    // A small plain JSON body (a one-row inference) is read and parsed here, as the body parser would parse it, and
    // answered with the same errors; it is most requests, and the body parser's checks and streams cost more than the
    // parse. Any other body (compressed, another media type, no Content-Length) takes the body parser.
    const directJson = async (ctx: Context, length: number, next: Next): Promise<void> => {
      let bytes: Uint8Array;
      try {
        bytes = await readBody(ctx.req, length, length);
      } catch (err) {
        throw badRequest('invalid_json', `request body is not valid JSON: ${bodyParserReadError(err)}`);
      }
      let text: string;
      try {
        ({ parsed: ctx.request.body, text } = parseStrictJson(bytes));
      } catch (err) {
        throw badRequest('invalid_json', `request body is not valid JSON: ${(err as Error).message}`);
      }
      (ctx.request as { rawBody?: string }).rawBody = text;
      checkDepth(text);
      await next();
    };
    const parsedJson = (ctx: Context, next: Next): Promise<void> => {
      if (ctx.request.body !== undefined) return next();
      const small = smallJsonLength(ctx.req, Math.min(SMALL_JSON_BYTES, config.get('server.bodyLimitBytes')));
      if (small !== undefined) return directJson(ctx, small, next);
      return parseJson(ctx, async () => {
        checkDepth((ctx.request as { rawBody?: string }).rawBody);
        await next();
      });
    };
    const onRequest = hookChain(hooks, 'onRequest');
    const route = this.routes.middleware();
    const done = () => Promise.resolve();
    // Once the key is checked: the body (the three ways it is read, in order; a method without a body and a request
    // no route takes skip them all at once), the `onRequest` hooks, then the route.
    const afterKeyCheck = (ctx: Context, routed: boolean): Promise<void> => {
      const handle = () => onRequest(ctx, () => route(ctx, done) as Promise<void>);
      if (!routed || !BODY_METHODS.has(ctx.method)) return handle();
      return binaryBody(ctx, () => offloadedJson(ctx, () => parsedJson(ctx, handle)));
    };
    // The key is checked, and the `preParsing` hooks (rate limits) run, before the body is read: a refused request
    // costs no read or parse of a body nobody will use. A request no route takes leaves its body unread as well (its
    // 404 or 405 needs none); an answer given before the body arrived closes the connection instead of draining it.
    // One step of Koa's chain for all of it, after the front's.
    this.app.use(async (ctx: Context) => {
      try {
        if (this.routes.authenticate(ctx)) await preParsing(ctx, () => afterKeyCheck(ctx, true));
        else await afterKeyCheck(ctx, false);
      } finally {
        if (!ctx.req.complete && !ctx.headerSent) ctx.res.setHeader('connection', 'close');
      }
    });
  }

  /**
   * Refuses what the server takes no part of now. HTTP/1.1 requires a Host header (node's own check, turned off in
   * listen(), answers a bare 400 with no body). While draining for shutdown, requests arriving on new or kept-alive
   * connections are refused, not queued, and their connection is closed after the answer; /health and /ready answer
   * as ever (/ready with 503: stopping). While starting (plugins activating, models loading and warming up) only the
   * probes answer, so that a load balancer or Kubernetes sees a live process that is not ready yet.
   */
  private admit(ctx: Context): void {
    const req = ctx.req;
    if (req.httpVersion === '1.1' && !req.headers.host)
      throw badRequest('missing_host', 'an HTTP/1.1 request needs a Host header');
    const status = this.kernel.health.status();
    if (this.draining || status === 'stopping') {
      ctx.res.setHeader('connection', 'close');
      if (PROBES.has(ctx.path)) return;
      throw unavailable('server_shutting_down', 'the server is shutting down; retry against another instance', 1);
    }
    if (status === 'starting' && !PROBES.has(ctx.path))
      throw unavailable('server_starting', 'the server is starting: its models are loading; retry shortly', 1);
  }

  /** Starts listening, over HTTPS when `server.tls` names a certificate; port 0 picks a free port. */
  async listen(host: string, port: number): Promise<{ host: string; port: number; url: string }> {
    const { config, logger } = this.kernel;
    const handle = this.app.callback();
    const inFlight = this.inFlight;
    // One listener function for every response (`this` is the response), not a closure made per request.
    const settle = (res: ServerResponse) => {
      inFlight.delete(res);
      if (inFlight.size === 0) this.onDrained?.();
    };
    function onClose(this: ServerResponse) {
      settle(this);
    }
    const onRequest = (req: IncomingMessage, res: ServerResponse) => {
      if (!this.draining) {
        inFlight.add(res);
        res.on('close', onClose);
      }
      this.watchBody(req, res);
      void handle(req, res);
    };
    const requestTimeout = config.get('server.requestTimeoutMs');
    const headersTimeout = Math.min(config.get('server.headersTimeoutMs'), requestTimeout || Infinity);
    const options: ServerOptions = {
      requestTimeout,
      headersTimeout,
      // A request without Host gets the JSON 400 a step of the app gives it, not Node's bare one.
      requireHostHeader: false,
      // How often node looks for requests past those limits: every 30 s by default, too coarse for short ones.
      connectionsCheckingInterval: Math.max(100, Math.min(30_000, Math.round(headersTimeout / 4))),
    };
    let server: Server;
    try {
      this.tls = TlsCertificates.fromConfig(config.get('server.tls'), logger);
      server = this.tls
        ? (createHttpsServer({ ...options, ...this.tls.serverOptions() }, onRequest) as unknown as Server)
        : createServer(options, onRequest);
    } catch (err) {
      // A certificate that cannot be read or used is a config mistake: the CLI exits 2 with the message.
      if (err instanceof TlsConfigError) throw new ListenError(err.message, 'ERR_TLS_CONFIG', host, port);
      throw err;
    }
    const maxConnections = config.get('server.maxConnections');
    if (maxConnections > 0) server.maxConnections = maxConnections;
    server.on('connection', () => this.accepted++);
    server.on(this.tls ? 'secureConnection' : 'connection', () => (this.lastAcceptedAt = performance.now()));
    let warnedAt = -Infinity;
    server.on('drop', () => {
      // At most one line a minute: a flood past the cap must not flood the log as well.
      if (performance.now() - warnedAt < 60_000) return;
      warnedAt = performance.now();
      logger.warn({ maxConnections }, 'connection refused: server.maxConnections connections are open');
    });
    server.on('clientError', answerClientError);
    server.on('connect', answerConnect);
    this.ws = new WsHub(
      this.kernel.events,
      this.kernel.logger,
      async (req) => {
        const found = await this.auth.identifySocket(req);
        if (found === 'open') return { label: 'anonymous', admin: true };
        if (typeof found === 'string') return found;
        return {
          label: found.label,
          admin: found.key.role === 'admin',
          tenant: found.tenancy.tenant!,
          tenancy: found.tenancy,
          caller: callerFor(found.key),
        };
      },
      this.kernel.extensions.point(ExtensionPoints.wsTopics),
      () => this.kernel.config.get('ws'),
      this.kernel.extensions.point(ExtensionPoints.wsHandlers),
      this.kernel.extensions.point(ExtensionPoints.requestGate),
    );
    this.ws.attach(server);
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err) => reject(toListenError(err, host, port)));
      server.listen(port, host, () => resolve());
    });
    this.server = server;
    await this.tls?.watch(server as unknown as HttpsServer);
    const address = server.address() as AddressInfo;
    const shown = address.family === 'IPv6' ? `[${address.address}]` : address.address;
    const scheme = this.tls ? 'https' : 'http';
    return { host: address.address, port: address.port, url: `${scheme}://${shown}:${address.port}` };
  }

  /**
   * A request body that stops arriving for `server.bodyIdleTimeoutMs` is answered 408 and its connection closed
   * (node's own `requestTimeout` bounds the whole request, but a body trickled a byte at a time would hold its
   * connection that long).
   */
  private watchBody(req: IncomingMessage, res: ServerResponse): void {
    const hasBody = req.headers['transfer-encoding'] !== undefined || Number(req.headers['content-length']) > 0;
    if (!hasBody || req.complete) return;
    const idle = this.kernel.config.get('server.bodyIdleTimeoutMs');
    if (!idle) return;
    // A body that came in the same packets as its headers is complete once the parser is through them (by the next
    // turn of the loop): only one still arriving then is watched (a socket timer and three listeners per request).
    setImmediate(() => {
      if (!req.complete && !res.writableEnded) this.watchIdleBody(req, res, idle);
    });
  }

  private watchIdleBody(req: IncomingMessage, res: ServerResponse, idle: number): void {
    const socket = req.socket;
    const stop = () => socket.setTimeout(0);
    socket.setTimeout(idle);
    req.once('end', stop);
    res.once('close', stop);
    // Node emits `timeout` on the response of an idle socket (and destroys the socket when no one listens).
    res.on('timeout', () => {
      if (req.complete) return stop();
      this.kernel.logger.debug({ idleMs: idle }, 'request body stalled; answered 408');
      if (res.headersSent) return void socket.destroy();
      const body = JSON.stringify(
        new NucleusError(
          408,
          'request_timeout',
          `the request body stopped arriving for ${idle} ms (server.bodyIdleTimeoutMs); send it without pauses`,
        ).toBody(),
      );
      res.writeHead(408, { 'content-type': 'application/json', connection: 'close' });
      res.end(body, () => socket.destroy());
    });
  }

  /**
   * Drains, then stops: while the requests in flight finish, the listener stays open and every new request (on a
   * new or a kept-alive connection) is answered 503 with `Retry-After` and `Connection: close` — a client learns the
   * server is stopping instead of finding the port closed, and `/ready` reports it. Then the listener and the
   * connections close; after `graceMs` in all, the connections still open are closed. Resolves whether everything
   * finished in time. `delayMs`: the listener and idle connections stay open at least this long (a balancer's time to
   * see /ready answer 503), within `graceMs`.
   */
  async close(graceMs = Infinity, delayMs = 0): Promise<boolean> {
    this.draining = true;
    this.ws?.close();
    const server = this.server;
    if (!server) {
      await this.tls?.close();
      await this.closeParsers();
      return true;
    }
    const deadline = performance.now() + graceMs;
    const lingerUntil = Math.min(performance.now() + delayMs, deadline);
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
    // Connections the system completed but node has not accepted yet are reset when the listener closes, under a
    // client that has sent its request and cannot tell whether to retry. So the listener stays open until no
    // connection has come for a moment, and those that came are answered 503 like any other; node's idle-connection
    // close spares a connection that has not begun its first request. The bound is the shutdown deadline: a burst of
    // connections can take longer than any fixed linger to be accepted (1,500 at once took over a second here), and
    // closing before then resets the hundreds still queued; a balancer stops sending once /ready answers 503.
    const linger = lingerUntil - performance.now();
    if (drained && linger > 0) await new Promise((resolve) => setTimeout(resolve, linger));
    if (drained) await this.quiet(deadline);
    const closed = new Promise<true>((resolve) => server.close(() => resolve(true)));
    server.closeIdleConnections();
    const finished = await new Promise<boolean>((resolve) => {
      void closed.then(resolve);
      if (!drained) resolve(false);
      else if (Number.isFinite(graceMs))
        timer = setTimeout(() => resolve(false), Math.max(0, deadline - performance.now()));
    });
    clearTimeout(timer);
    if (!finished) server.closeAllConnections();
    await this.tls?.close();
    await this.closeParsers();
    return finished;
  }

  /**
   * Resolves once no connection has come for {@link QUIET_MS} and a turn of the event loop has found none waiting, or
   * at `until`. Time alone does not tell: while the loop is busy (answering a burst) nothing is accepted, yet
   * connections queue up in the system, and closing the listener then resets each of them. A poll phase accepts every
   * connection queued by then: one that accepts none says the queue is empty.
   */
  private async quiet(until: number): Promise<void> {
    for (;;) {
      const wait = Math.min(this.lastAcceptedAt + QUIET_MS, until) - performance.now();
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
      if (performance.now() >= until) return;
      if (performance.now() - this.lastAcceptedAt < QUIET_MS) continue;
      // From an immediate, the next one runs after a whole poll phase, whatever phase this began in.
      await new Promise((resolve) => setImmediate(resolve));
      const accepted = this.accepted;
      await new Promise((resolve) => setImmediate(resolve));
      if (this.accepted === accepted) return;
    }
  }

  private async closeParsers(): Promise<void> {
    const parsers = this.parsers;
    this.parsers = undefined;
    await parsers?.close();
  }

  private apiKeys(): readonly ApiKey[] {
    // Worked out again only when the config changes (a patch replaces the snapshot), not for every request.
    const config = this.kernel.config.snapshot();
    if (this.keys?.config === config) return this.keys.keys;
    const keys = [...config.auth.keys];
    const adminKey = config.auth.adminKey;
    if (adminKey) keys.push({ key: adminKey, role: 'admin', name: 'admin' });
    this.keys = { config, keys };
    return keys;
  }
}
