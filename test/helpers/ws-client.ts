import WebSocket from 'ws';

/** One message the server sent on `/ws`. */
export type WsMessage = Record<string, unknown> & { type: string; id?: string | number };

/** A `/ws` socket that keeps every message it receives and waits (boundedly) for the ones a test expects. */
export class WsClient {
  readonly received: WsMessage[] = [];
  #waiters: (() => void)[] = [];

  private constructor(readonly ws: WebSocket) {
    ws.on('message', (raw) => {
      this.received.push(JSON.parse(raw.toString()) as WsMessage);
      for (const w of this.#waiters.splice(0)) w();
    });
  }

  /** Opens `/ws` on the server at `url` with these upgrade headers; resolves once the welcome message came. */
  static async open(url: string, headers: Record<string, string> = {}): Promise<WsClient> {
    const ws = new WebSocket(`${url.replace('http', 'ws')}/ws`, { headers });
    // Listening from the start: the welcome message may come in the same read as the upgrade's answer.
    const client = new WsClient(ws);
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    await client.next((m) => m.type === 'welcome');
    return client;
  }

  /** Sends `message` as JSON; a string goes as it is (for tests of what is not JSON). */
  send(message: unknown): void {
    this.ws.send(typeof message === 'string' ? message : JSON.stringify(message));
  }

  /** The first message (from index `from` on) that matches, waiting up to `timeoutMs` for it. */
  async next(match: (m: WsMessage) => boolean, from = 0, timeoutMs = 60_000): Promise<WsMessage> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.received.slice(from).find(match);
      if (found) return found;
      if (Date.now() > deadline) throw new Error(`no such message; got ${JSON.stringify(this.received.slice(-5))}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 1000);
        this.#waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /** Every message about request `id`. */
  of(id: string | number): WsMessage[] {
    return this.received.filter((m) => m.id === id);
  }

  /** Still usable: a ping is answered. */
  async pong(): Promise<void> {
    const from = this.received.length;
    this.send({ type: 'ping' });
    await this.next((m) => m.type === 'pong', from);
  }

  /** Sends a request and waits for how it ends: its `done`, `result` or `error` message. */
  async request(message: Record<string, unknown> & { id: string | number }): Promise<WsMessage> {
    const from = this.received.length;
    this.send(message);
    return this.next((m) => m.id === message.id && ['done', 'result', 'error'].includes(m.type), from);
  }
}
