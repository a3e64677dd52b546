import { connect, type Socket } from 'node:net';
import { parentPort, workerData } from 'node:worker_threads';

/**
 * Clients of a server that is about to stop, in a thread of their own (run as a worker: `workerData` is
 * {@link BurstOptions}), so that they connect and send while the server's event loop is busy, as clients in other
 * processes would. `fresh` clients open a connection per request and `keepAlive` ones keep theirs while the server
 * does; each sends up to `rounds` requests. Once `signalAfter` requests are answered the worker posts `{answered}`
 * (the test stops the server then) and opens a burst of `burst` more connections at once, one request each. For
 * `hammerMs` from then on clients send again at once after a 503; after that they wait out its `Retry-After`, as a
 * well-behaved client does. Every client stops at its first connection refused or request lost; then the worker
 * posts `{outcomes}`.
 */
export interface BurstOptions {
  port: number;
  fresh: number;
  keepAlive: number;
  rounds: number;
  signalAfter: number;
  burst: number;
  hammerMs: number;
}

/** How one request ended, as its client saw it. */
export type BurstOutcome =
  | { kind: 'answered'; status: number; close: boolean; retryAfterS: number }
  | { kind: 'refused' }
  | { kind: 'lost'; code: string; connected: boolean; localPort?: number; answeredBefore: number };

const REQUEST = 'GET /whoami HTTP/1.1\r\nHost: burst\r\n\r\n';

// HTTP/1.1 by hand, so that nothing between the client and the server retries or hides a reset.
class Connection {
  private readonly socket: Socket;
  private buffer = Buffer.alloc(0);
  private connected = false;
  private localPort?: number;
  private answered = 0;
  private ended?: string;
  private waiting?: (outcome: BurstOutcome) => void;

  constructor(port: number) {
    this.socket = connect(port, '127.0.0.1');
    this.socket.setNoDelay(true);
    this.socket.on('connect', () => {
      this.connected = true;
      this.localPort = this.socket.localPort;
    });
    this.socket.on('data', (chunk: Buffer) => {
      this.buffer = Buffer.concat([this.buffer, chunk]);
      this.settle();
    });
    this.socket.on('error', (err: NodeJS.ErrnoException) => this.fail(err.code ?? err.message));
    this.socket.on('close', () => this.fail('closed without an answer'));
  }

  request(): Promise<BurstOutcome> {
    return new Promise((resolve) => {
      this.waiting = resolve;
      if (this.ended !== undefined) return this.fail(this.ended);
      this.socket.write(REQUEST, () => {});
    });
  }

  destroy(): void {
    this.socket.destroy();
  }

  private settle(): void {
    const head = this.buffer.indexOf('\r\n\r\n');
    if (head < 0 || !this.waiting) return;
    const headers = this.buffer.subarray(0, head).toString();
    const length = Number(/\r\ncontent-length: *(\d+)/i.exec(headers)?.[1] ?? 0);
    if (this.buffer.length < head + 4 + length) return;
    this.buffer = this.buffer.subarray(head + 4 + length);
    const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(headers)?.[1]);
    const resolve = this.waiting;
    this.waiting = undefined;
    this.answered++;
    resolve({
      kind: 'answered',
      status,
      close: /\r\nconnection: *close/i.test(headers),
      retryAfterS: Number(/\r\nretry-after: *(\d+)/i.exec(headers)?.[1] ?? 0),
    });
  }

  private fail(why: string): void {
    this.ended ??= why;
    const resolve = this.waiting;
    if (!resolve) return;
    this.waiting = undefined;
    if (!this.connected && why === 'ECONNREFUSED') return resolve({ kind: 'refused' });
    resolve({
      kind: 'lost',
      code: why,
      connected: this.connected,
      answeredBefore: this.answered,
      ...(this.localPort !== undefined && { localPort: this.localPort }),
    });
  }
}

async function run(options: BurstOptions): Promise<BurstOutcome[]> {
  const outcomes: BurstOutcome[] = [];
  const clients: Promise<void>[] = [];
  let answered = 0;
  let hammerUntil = Infinity;
  const client = async (fresh: boolean, rounds: number): Promise<void> => {
    let conn: Connection | undefined;
    try {
      for (let i = 0; i < rounds; i++) {
        conn ??= new Connection(options.port);
        const outcome = await conn.request();
        outcomes.push(outcome);
        if (outcome.kind !== 'answered') return;
        if (++answered === options.signalAfter) {
          parentPort?.postMessage({ answered });
          hammerUntil = performance.now() + options.hammerMs;
          for (let j = 0; j < options.burst; j++) clients.push(client(true, 1));
        }
        if (fresh || outcome.close) {
          conn.destroy();
          conn = undefined;
        }
        if (outcome.status === 503 && performance.now() > hammerUntil)
          await new Promise((r) => setTimeout(r, outcome.retryAfterS * 1000));
      }
    } finally {
      conn?.destroy();
    }
  };
  for (let i = 0; i < options.fresh; i++) clients.push(client(true, options.rounds));
  for (let i = 0; i < options.keepAlive; i++) clients.push(client(false, options.rounds));
  // The burst adds clients while these run: wait again until none came since the last wait began.
  let waitedFor = 0;
  while (waitedFor < clients.length) {
    waitedFor = clients.length;
    await Promise.all(clients);
  }
  return outcomes;
}

if (parentPort && workerData) {
  const outcomes = await run(workerData as BurstOptions);
  parentPort.postMessage({ outcomes });
}
