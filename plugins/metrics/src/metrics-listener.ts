import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';

/**
 * A plain HTTP listener of its own that answers only `GET <path>` with the exposition, for scraping on a separate
 * port.
 */
export class MetricsListener {
  private constructor(
    private readonly server: Server,
    /** The URL it answers on. */
    readonly url: string,
  ) {}

  /** Listens on `host`:`port` (0 picks a free port). */
  static async start(
    registry: Pick<Registry, 'contentType' | 'metrics'>,
    host: string,
    port: number,
    path: string,
  ): Promise<MetricsListener> {
    const server = createServer((req, res) => {
      const url = new URL(req.url ?? '/', 'http://localhost');
      if (url.pathname !== path || (req.method !== 'GET' && req.method !== 'HEAD')) {
        res.writeHead(404, { 'content-type': 'text/plain' }).end(`only GET ${path} is served here\n`);
        return;
      }
      registry.metrics().then(
        (text) =>
          res.writeHead(200, { 'content-type': registry.contentType }).end(req.method === 'HEAD' ? undefined : text),
        (err: Error) =>
          res.writeHead(500, { 'content-type': 'text/plain' }).end(`collecting metrics failed: ${err.message}\n`),
      );
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => resolve());
    });
    const address = server.address() as AddressInfo;
    const shown = address.family === 'IPv6' ? `[${address.address}]` : address.address;
    return new MetricsListener(server, `http://${shown}:${address.port}${path}`);
  }

  /** Stops listening and drops idle connections. */
  close(): Promise<void> {
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      this.server.closeIdleConnections();
    });
  }
}
