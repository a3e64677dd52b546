import { type IncomingMessage, type Server, STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';
import {
  admitRequest,
  type Caller,
  type EventBus,
  type EventType,
  type ExtensionPointView,
  type Logger,
  type NucleusEvents,
  type RequestGate,
  type Tenancy,
  toNucleusError,
  type WsRequestHandler,
  type WsTopic,
} from '@nucleus/sdk';
import { WebSocketServer, type WebSocket } from 'ws';
import { WsRequests } from './ws-requests.js';

/** The topics a WebSocket client can subscribe to, and the kernel events each carries. */
export const WS_TOPICS: Record<string, readonly EventType[]> = {
  plugins: ['plugin.state', 'plugin.reloaded', 'plugin.reloadFailed', 'extension.changed'],
  models: [
    'model.loading',
    'model.loaded',
    'model.unloaded',
    'model.failed',
    'model.swapped',
    'model.swapFailed',
    'backend.fallback',
  ],
  requests: ['request.start', 'request.end'],
  config: ['config.changed'],
};

/** Who a socket belongs to, as the upgrade's key check found it. */
export interface WsIdentity {
  /** The key's name (or role): what logs show. */
  label: string;
  /** Admin keys, and every socket while no key is configured, see every event as it is. */
  admin: boolean;
  /** The key's tenant: a user socket sees the request events of this tenant only. Absent while no key is configured. */
  tenant?: string;
  /** What the socket's requests carry into the engine, as HTTP requests with the same key do. */
  tenancy?: Tenancy;
  /** The caller the request gates (rate limits) judge; absent while no key is configured. */
  caller?: Caller;
}

/** The hub's bounds (`ws.*` in the config), read at each use so that they change at run time. */
export interface WsLimits {
  maxConnections: number;
  maxConnectionsPerKey: number;
  maxBufferedBytes: number;
  maxDroppedMessages: number;
}

const DEFAULT_LIMITS: WsLimits = {
  maxConnections: 1000,
  maxConnectionsPerKey: 16,
  maxBufferedBytes: 1 << 20,
  maxDroppedMessages: 1000,
};

/** Close code for a socket that fell too far behind: 1013, "try again later". */
export const WS_CLOSE_SLOW_READER = 1013;

interface Client {
  socket: WebSocket;
  identity: WsIdentity;
  topics: Set<string>;
  alive: boolean;
  /** Messages dropped since the last one sent. */
  dropped: number;
  /** Its inference requests in flight. */
  requests: WsRequests;
}

/**
 * The WebSocket hub on `/ws`: clients send `{"type":"subscribe","topics":[…]}` and receive kernel
 * events as `{"type":"event","topic","event","data"}`. Bad messages get an error frame, never a close.
 * Besides {@link WS_TOPICS}, plugins add topics at the `wsTopics` extension point.
 *
 * Each socket is its key's: a user key sees the request events of its own requests only, and config changes without
 * their values; admin keys see everything. Sockets are capped in all and per key. A socket whose unsent messages
 * pass `maxBufferedBytes` has further messages dropped (it is told how many once it catches up), and after
 * `maxDroppedMessages` in a row it is closed with 1013: a client that never reads costs a bounded amount of memory.
 */
export class WsHub {
  private readonly wss = new WebSocketServer({ noServer: true, maxPayload: 1 << 20 });
  private readonly clients = new Set<Client>();
  private readonly perKey = new Map<string, number>();
  /** The tenants of the requests running now, to place the engine events that name them (request ids). */
  private readonly requestOwners = new Map<string, string>();
  private readonly unsubscribe: () => void;
  private readonly heartbeat: NodeJS.Timeout;
  private readonly offTopics: () => void;
  private topicCache: Record<string, readonly EventType[]> | undefined;
  /** The topics only admin sockets may subscribe to (plugin topics contributed with `access: 'admin'`). */
  private adminTopicCache = new Set<string>();
  private droppedTotal = 0;
  /** How many sockets subscribe to each topic (those with none left out). */
  private readonly watchers = new Map<string, number>();
  /** The `ratelimit-*` headers the gates gave each upgrade, for its 101 answer. */
  private readonly upgradeHeaders = new WeakMap<IncomingMessage, Readonly<Record<string, string>>>();

  constructor(
    private readonly events: EventBus,
    private readonly logger: Logger,
    /** The socket's identity, or a message saying why it is refused (401). */
    private readonly authorize: (req: IncomingMessage) => WsIdentity | string | Promise<WsIdentity | string>,
    private readonly pluginTopics?: ExtensionPointView<WsTopic>,
    private readonly limits: () => WsLimits = () => DEFAULT_LIMITS,
    /** Request types plugins serve (`generate`, `chat`, `infer`): see {@link WsRequests}. */
    private readonly handlers?: ExtensionPointView<WsRequestHandler>,
    /**
     * The rate limits: an upgrade is a request, judged like an HTTP one before it becomes a socket, and so is each
     * inference request on the socket.
     */
    private readonly gates?: ExtensionPointView<RequestGate>,
  ) {
    this.wss.on('headers', (headers, req) => {
      for (const [name, value] of Object.entries(this.upgradeHeaders.get(req) ?? {})) headers.push(`${name}: ${value}`);
    });
    this.unsubscribe = events.onAny((type, data) => this.broadcast(type, data));
    this.heartbeat = setInterval(() => this.ping(), 30_000).unref();
    this.offTopics =
      pluginTopics?.onChange(() => {
        this.topicCache = undefined;
        // A topic contributed again (its plugin reloaded) is watched by the sockets still subscribed to its name.
        for (const topic of this.watchers.keys()) this.tellWatched(topic, true);
      }) ?? (() => {});
  }

  /** Every topic a client may subscribe to now, with the events it carries: the built-in ones, then the plugins'. */
  topics(): Record<string, readonly EventType[]> {
    if (this.topicCache) return this.topicCache;
    const topics: Record<string, readonly EventType[]> = { ...WS_TOPICS };
    this.adminTopicCache = new Set();
    for (const c of this.pluginTopics?.list() ?? []) {
      if (c.value.name in topics) continue;
      topics[c.value.name] = c.value.events;
      if (c.value.access === 'admin') this.adminTopicCache.add(c.value.name);
    }
    return (this.topicCache = topics);
  }

  /** The topics a socket may subscribe to: all of them for an admin, the others without the admin-only ones. */
  private topicsFor(identity: WsIdentity): string[] {
    const names = Object.keys(this.topics());
    return identity.admin ? names : names.filter((t) => !this.adminTopicCache.has(t));
  }

  /** Takes over HTTP upgrades to `/ws` on this server. */
  attach(server: Server): void {
    server.on('upgrade', (req, socket, head) => {
      const path = new URL(req.url ?? '/', 'http://localhost').pathname;
      if (path !== '/ws') return void socket.destroy();
      const found = this.authorize(req);
      // A signed token may need the identity provider's keys fetched first; a key or a certificate answers at once.
      if (found instanceof Promise)
        found.then(
          (identity) => !socket.destroyed && this.upgrade(req, socket, head, identity),
          () => socket.destroy(),
        );
      else this.upgrade(req, socket, head, found);
    });
  }

  private upgrade(req: IncomingMessage, socket: Duplex, head: Buffer, identity: WsIdentity | string): void {
    if (typeof identity === 'string')
      return refuse(socket, '401 Unauthorized', 'authentication_error', 'invalid_api_key', identity);
    const limits = this.limits();
    if (this.clients.size >= limits.maxConnections)
      return refuse(
        socket,
        '429 Too Many Requests',
        'rate_limit_error',
        'too_many_connections',
        `the server has ${this.clients.size} WebSocket connections open, its limit (ws.maxConnections); retry later`,
      );
    const mine = identity.tenant === undefined ? 0 : (this.perKey.get(identity.tenant) ?? 0);
    if (mine >= limits.maxConnectionsPerKey)
      return refuse(
        socket,
        '429 Too Many Requests',
        'rate_limit_error',
        'too_many_connections',
        `the key "${identity.label}" has ${mine} WebSocket connections open, its limit (ws.maxConnectionsPerKey); close one first`,
      );
    if (!this.gates) return this.wss.handleUpgrade(req, socket, head, (ws) => this.accept(ws, identity, req));
    const gated = {
      ...(identity.caller && { caller: identity.caller }),
      address: req.socket.remoteAddress ?? '',
      protocol: 'ws',
      route: '/ws',
    };
    admitRequest(this.gates, gated).then(
      (pass) => {
        // The upgrade is one request; the inference requests on the socket are judged one by one (WsRequests).
        pass.release();
        if (socket.destroyed) return;
        this.upgradeHeaders.set(req, pass.headers);
        this.wss.handleUpgrade(req, socket, head, (ws) => this.accept(ws, identity, req));
      },
      (err: unknown) => {
        const refusal = toNucleusError(err);
        if (refusal.status >= 500) this.logger.warn({ err }, 'request gate failed on a WebSocket upgrade');
        const status = `${refusal.status} ${STATUS_CODES[refusal.status] ?? 'Error'}`;
        refuse(socket, status, refusal.type, refusal.code, refusal.message, refusal.headers);
      },
    );
  }

  /** Number of connected clients. */
  get size(): number {
    return this.clients.size;
  }

  /** Messages dropped for slow sockets since the hub started. */
  get dropped(): number {
    return this.droppedTotal;
  }

  /** Closes every socket. */
  close(): void {
    clearInterval(this.heartbeat);
    this.unsubscribe();
    this.offTopics();
    for (const c of this.clients) c.socket.terminate();
    this.wss.close();
  }

  private accept(socket: WebSocket, identity: WsIdentity, req: IncomingMessage): void {
    const requests = new WsRequests(
      socket,
      {
        label: identity.label,
        tenancy: identity.tenancy ?? {},
        ...(identity.caller && { caller: identity.caller }),
        address: req.socket.remoteAddress ?? '',
        headers: req.headers,
      },
      {
        events: this.events,
        logger: this.logger,
        handlers: this.handlers,
        gates: this.gates,
        maxBufferedBytes: () => this.limits().maxBufferedBytes,
      },
    );
    const client: Client = { socket, identity, topics: new Set(), alive: true, dropped: 0, requests };
    this.clients.add(client);
    if (identity.tenant !== undefined) this.perKey.set(identity.tenant, (this.perKey.get(identity.tenant) ?? 0) + 1);
    socket.on('pong', () => (client.alive = true));
    socket.on('close', () => this.forget(client));
    socket.on('error', (err) => this.logger.debug({ err }, 'websocket error'));
    socket.on('message', (raw) => this.onMessage(client, raw.toString()));
    this.send(client, { type: 'welcome', topics: this.topicsFor(identity) });
  }

  private forget(client: Client): void {
    client.requests.closeAll();
    if (!this.clients.delete(client)) return;
    for (const t of client.topics) this.watch(t, -1);
    // Request events are not followed while no socket listens: the requests it knew of are forgotten with it.
    if (this.clients.size === 0) this.requestOwners.clear();
    const tenant = client.identity.tenant;
    if (tenant === undefined) return;
    const left = (this.perKey.get(tenant) ?? 1) - 1;
    if (left > 0) this.perKey.set(tenant, left);
    else this.perKey.delete(tenant);
  }

  private onMessage(client: Client, raw: string): void {
    let msg: { type?: unknown; topics?: unknown; id?: unknown };
    try {
      msg = JSON.parse(raw) as typeof msg;
    } catch {
      return this.sendError(client, 'invalid_json', 'message is not valid JSON');
    }
    if (msg === null || typeof msg !== 'object' || Array.isArray(msg))
      return this.sendError(client, 'invalid_message', 'a message is a JSON object with a "type"');
    if (msg.type === 'ping') return this.send(client, { type: 'pong' });
    if (msg.type === 'cancel') return client.requests.cancel(msg.id);
    const handler = typeof msg.type === 'string' ? client.requests.handlerOf(msg.type) : undefined;
    if (handler) return client.requests.start(msg.type as string, msg as Record<string, unknown>, handler);
    if (msg.type !== 'subscribe' && msg.type !== 'unsubscribe') {
      const served = client.requests.types().map((t) => `"${t}"`);
      return this.sendError(
        client,
        'unknown_type',
        `unknown message type ${JSON.stringify(msg.type)}; use ${['"subscribe"', '"unsubscribe"', '"ping"', ...served, ...(served.length ? ['"cancel"'] : [])].join(', ')}`,
      );
    }
    const topics = Array.isArray(msg.topics) ? msg.topics : [];
    const known = this.topics();
    const allowed = this.topicsFor(client.identity);
    const unknown = topics.filter((t) => typeof t !== 'string' || !(t in known));
    if (!topics.length || unknown.length) {
      return this.sendError(client, 'invalid_topics', `topics must be a non-empty list of ${allowed.join(', ')}`);
    }
    const refused = topics.filter((t) => !allowed.includes(t as string));
    if (msg.type === 'subscribe' && refused.length)
      return this.sendError(client, 'forbidden_topic', `${refused.join(', ')}: only admin keys may subscribe`);
    for (const t of topics as string[]) {
      if (msg.type !== 'subscribe') {
        if (client.topics.delete(t)) this.watch(t, -1);
      } else if (!client.topics.has(t)) {
        client.topics.add(t);
        this.watch(t, 1);
      }
    }
    this.send(client, { type: msg.type === 'subscribe' ? 'subscribed' : 'unsubscribed', topics: [...client.topics] });
  }

  /** Counts a socket subscribing to `topic` (+1) or leaving it (-1); the topic hears of its first and its last. */
  private watch(topic: string, delta: 1 | -1): void {
    const n = (this.watchers.get(topic) ?? 0) + delta;
    if (n > 0) this.watchers.set(topic, n);
    else this.watchers.delete(topic);
    if (n === (delta > 0 ? 1 : 0)) this.tellWatched(topic, n > 0);
  }

  private tellWatched(topic: string, watched: boolean): void {
    for (const c of this.pluginTopics?.list() ?? []) {
      if (c.value.name !== topic || !c.value.watched) continue;
      try {
        c.value.watched(watched);
      } catch (err) {
        this.logger.warn({ err, topic }, 'a WebSocket topic threw when told whether it is watched; ignored');
      }
    }
  }

  private broadcast<K extends EventType>(type: K, data: NucleusEvents[K]): void {
    if (!this.clients.size) return;
    const owner = this.ownerOf(type, data);
    for (const [topic, types] of Object.entries(this.topics())) {
      if (!types.includes(type)) continue;
      let full: string | undefined;
      let shown: string | undefined;
      for (const c of this.clients) {
        if (!c.topics.has(topic)) continue;
        // A topic that became admin-only (a plugin reload) stops reaching the user sockets still subscribed.
        if (!c.identity.admin && this.adminTopicCache.has(topic)) continue;
        if (c.identity.admin) {
          this.send(c, (full ??= JSON.stringify({ type: 'event', topic, event: type, data })));
        } else if (owner === undefined || owner === c.identity.tenant) {
          this.send(c, (shown ??= JSON.stringify({ type: 'event', topic, event: type, data: forUsers(type, data) })));
        }
      }
    }
    if (type === 'request.end') this.requestOwners.delete((data as NucleusEvents['request.end']).requestId);
  }

  /**
   * Whose an event is: its `tenant`, or the tenant of the request it names; `null` when it names a request the hub
   * cannot place (user sockets do not see it); undefined when it is nobody's (models, plugins, queues: everyone's).
   */
  private ownerOf<K extends EventType>(type: K, data: NucleusEvents[K]): string | null | undefined {
    const { tenant, requestId, requestIds } = data as { tenant?: string; requestId?: string; requestIds?: unknown };
    if (type === 'request.start' && tenant !== undefined && requestId !== undefined)
      this.requestOwners.set(requestId, tenant);
    if (tenant !== undefined) return tenant;
    if (typeof requestId === 'string') return this.requestOwners.get(requestId) ?? null;
    if (requestIds !== undefined) return null;
    return undefined;
  }

  private sendError(client: Client, code: string, message: string): void {
    this.send(client, { type: 'error', error: { message, type: 'invalid_request_error', code } });
  }

  // Unsent bytes past the bound drop the message: the socket's buffer stays bounded whatever the client does.
  private send(client: Client, message: unknown): void {
    const { socket } = client;
    if (socket.readyState !== socket.OPEN) return;
    const limits = this.limits();
    if (socket.bufferedAmount >= limits.maxBufferedBytes) {
      this.droppedTotal++;
      if (++client.dropped === 1)
        this.logger.warn(
          { key: client.identity.label, bufferedBytes: socket.bufferedAmount },
          'websocket client reads too slowly: dropping messages for it',
        );
      if (client.dropped >= limits.maxDroppedMessages) this.disconnect(client);
      return;
    }
    if (client.dropped > 0) {
      const dropped = client.dropped;
      client.dropped = 0;
      this.logger.info({ key: client.identity.label, dropped }, 'websocket client caught up after dropped messages');
      this.events.emit('ws.dropped', { key: client.identity.label, messages: dropped, closed: false });
      socket.send(JSON.stringify({ type: 'dropped', count: dropped }));
    }
    socket.send(typeof message === 'string' ? message : JSON.stringify(message));
  }

  private disconnect(client: Client): void {
    const { dropped } = client;
    this.forget(client);
    this.logger.warn(
      { key: client.identity.label, dropped },
      'websocket client closed: it read too slowly and messages were dropped',
    );
    this.events.emit('ws.dropped', { key: client.identity.label, messages: dropped, closed: true });
    client.socket.close(
      WS_CLOSE_SLOW_READER,
      `${dropped} messages dropped: the client reads too slowly (ws.maxDroppedMessages)`,
    );
  }

  private ping(): void {
    for (const c of this.clients) {
      if (!c.alive) {
        c.socket.terminate();
        continue;
      }
      c.alive = false;
      c.socket.ping();
    }
  }
}

// What a user key's socket sees of an event that passed the tenant check: config changes without their values (an
// admin's change may hold anything, from a model path to a limit set for someone else).
function forUsers<K extends EventType>(type: K, data: NucleusEvents[K]): unknown {
  if (type !== 'config.changed') return data;
  return { path: (data as NucleusEvents['config.changed']).path };
}

// Answers an upgrade that will not become a WebSocket with an HTTP status and the usual JSON error body.
function refuse(
  socket: Duplex,
  status: string,
  type: string,
  code: string,
  message: string,
  headers: Readonly<Record<string, string>> = status.startsWith('429') ? { 'retry-after': '5' } : {},
): void {
  const body = JSON.stringify({ error: { message, type, code } });
  const extra = Object.entries(headers)
    .map(([name, value]) => `${name}: ${value}\r\n`)
    .join('');
  socket.end(
    `HTTP/1.1 ${status}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n${extra}connection: close\r\n\r\n${body}`,
  );
}
