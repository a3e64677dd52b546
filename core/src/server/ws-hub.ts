import type { IncomingMessage, Server } from 'node:http';
import type { EventBus, EventType, ExtensionPointView, Logger, NucleusEvents, WsTopic } from '@nucleus/sdk';
import { WebSocketServer, type WebSocket } from 'ws';

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

interface Client {
  socket: WebSocket;
  topics: Set<string>;
  alive: boolean;
}

/**
 * The WebSocket hub on `/ws`: clients send `{"type":"subscribe","topics":[…]}` and receive kernel
 * events as `{"type":"event","topic","event","data"}`. Bad messages get an error frame, never a close.
 * Besides {@link WS_TOPICS}, plugins add topics at the `wsTopics` extension point.
 */
export class WsHub {
  private readonly wss = new WebSocketServer({ noServer: true, maxPayload: 1 << 20 });
  private readonly clients = new Set<Client>();
  private readonly unsubscribe: () => void;
  private readonly heartbeat: NodeJS.Timeout;
  private readonly offTopics: () => void;
  private topicCache: Record<string, readonly EventType[]> | undefined;

  constructor(
    events: EventBus,
    private readonly logger: Logger,
    private readonly authorize: (req: IncomingMessage) => string | undefined,
    private readonly pluginTopics?: ExtensionPointView<WsTopic>,
  ) {
    this.unsubscribe = events.onAny((type, data) => this.broadcast(type, data));
    this.heartbeat = setInterval(() => this.ping(), 30_000).unref();
    this.offTopics = pluginTopics?.onChange(() => (this.topicCache = undefined)) ?? (() => {});
  }

  /** Every topic a client may subscribe to now, with the events it carries: the built-in ones, then the plugins'. */
  topics(): Record<string, readonly EventType[]> {
    if (this.topicCache) return this.topicCache;
    const topics: Record<string, readonly EventType[]> = { ...WS_TOPICS };
    for (const c of this.pluginTopics?.list() ?? [])
      if (!(c.value.name in topics)) topics[c.value.name] = c.value.events;
    return (this.topicCache = topics);
  }

  /** Takes over HTTP upgrades to `/ws` on this server. */
  attach(server: Server): void {
    server.on('upgrade', (req, socket, head) => {
      const path = new URL(req.url ?? '/', 'http://localhost').pathname;
      if (path !== '/ws') return void socket.destroy();
      const denied = this.authorize(req);
      if (denied) {
        socket.end(
          `HTTP/1.1 401 Unauthorized\r\ncontent-type: application/json\r\n\r\n${JSON.stringify({ error: { message: denied, type: 'authentication_error', code: 'invalid_api_key' } })}`,
        );
        return;
      }
      this.wss.handleUpgrade(req, socket, head, (ws) => this.accept(ws));
    });
  }

  /** Number of connected clients. */
  get size(): number {
    return this.clients.size;
  }

  /** Closes every socket. */
  close(): void {
    clearInterval(this.heartbeat);
    this.unsubscribe();
    this.offTopics();
    for (const c of this.clients) c.socket.terminate();
    this.wss.close();
  }

  private accept(socket: WebSocket): void {
    const client: Client = { socket, topics: new Set(), alive: true };
    this.clients.add(client);
    socket.on('pong', () => (client.alive = true));
    socket.on('close', () => this.clients.delete(client));
    socket.on('error', (err) => this.logger.debug({ err }, 'websocket error'));
    socket.on('message', (raw) => this.onMessage(client, raw.toString()));
    this.send(client, { type: 'welcome', topics: Object.keys(this.topics()) });
  }

  private onMessage(client: Client, raw: string): void {
    let msg: { type?: unknown; topics?: unknown };
    try {
      msg = JSON.parse(raw) as typeof msg;
    } catch {
      return this.sendError(client, 'invalid_json', 'message is not valid JSON');
    }
    if (msg.type === 'ping') return this.send(client, { type: 'pong' });
    if (msg.type !== 'subscribe' && msg.type !== 'unsubscribe') {
      return this.sendError(
        client,
        'unknown_type',
        `unknown message type ${JSON.stringify(msg.type)}; use "subscribe", "unsubscribe" or "ping"`,
      );
    }
    const topics = Array.isArray(msg.topics) ? msg.topics : [];
    const known = this.topics();
    const unknown = topics.filter((t) => typeof t !== 'string' || !(t in known));
    if (!topics.length || unknown.length) {
      return this.sendError(
        client,
        'invalid_topics',
        `topics must be a non-empty list of ${Object.keys(known).join(', ')}`,
      );
    }
    for (const t of topics as string[]) msg.type === 'subscribe' ? client.topics.add(t) : client.topics.delete(t);
    this.send(client, { type: msg.type === 'subscribe' ? 'subscribed' : 'unsubscribed', topics: [...client.topics] });
  }

  private broadcast<K extends EventType>(type: K, data: NucleusEvents[K]): void {
    if (!this.clients.size) return;
    for (const [topic, types] of Object.entries(this.topics())) {
      if (!types.includes(type)) continue;
      for (const c of this.clients) if (c.topics.has(topic)) this.send(c, { type: 'event', topic, event: type, data });
    }
  }

  private sendError(client: Client, code: string, message: string): void {
    this.send(client, { type: 'error', error: { message, type: 'invalid_request_error', code } });
  }

  private send(client: Client, message: unknown): void {
    if (client.socket.readyState === client.socket.OPEN) client.socket.send(JSON.stringify(message));
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
