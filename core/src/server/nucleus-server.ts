import { ExtensionPoints } from '@nucleus/sdk';
import type { Kernel } from '../kernel/kernel.js';
import { RequiredModelsError } from '../kernel/kernel-module.js';
import { Nucleus, type NucleusOptions } from '../nucleus.js';
import { HttpServer } from './http-server.js';

/** A running Nucleus: its kernel, its HTTP server and the URL it answers on. */
export class NucleusServer {
  private constructor(
    readonly kernel: Nucleus,
    readonly http: HttpServer,
    readonly url: string,
  ) {}

  /** Builds the kernel, activates plugins and listens on `server.host`:`server.port` from the config; rejects when a required model failed to load. */
  static async start(options: NucleusOptions = {}): Promise<NucleusServer> {
    const kernel = Nucleus.create(options);
    const host = kernel.config.get('server.host');
    const port = kernel.config.get('server.port');
    // Listening from the start: while plugins activate and models load and warm up (minutes, for large ones) the
    // probes answer (`/livez` 200, `/ready` 503 starting) and everything else 503 server_starting; a port someone
    // else holds is found out at once.
    const http = new HttpServer(kernel);
    const { url } = await http.listen(host, port);
    try {
      await kernel.start();
    } catch (err) {
      await http.close(0);
      throw err;
    }
    // A server missing a model it was told to serve would look healthy to a supervisor; refuse to start instead.
    const missing = kernel.requiredModelsMissing();
    if (missing.length > 0) {
      await http.close(0);
      await kernel.stop();
      throw new RequiredModelsError(missing);
    }
    try {
      // At debug: `nucleus serve` announces the URL itself, in its start-up banner.
      kernel.logger.debug(
        {
          url,
          plugins: kernel.plugins
            .list()
            .filter((p) => p.state === 'active')
            .map((p) => `${p.id}@${p.version}`),
        },
        'nucleus listening',
      );
      return new NucleusServer(kernel, http, url);
    } catch (err) {
      await kernel.stop();
      throw err;
    }
  }

  /**
   * Graceful shutdown: readiness goes 503 and new requests are refused, requests in flight finish
   * (up to `server.shutdownTimeoutMs`), exporters flush, then plugins deactivate.
   */
  async stop(): Promise<void> {
    const { kernel } = this;
    kernel.health.setPhase('stopping');
    const finished = await this.http.close(
      kernel.config.get('server.shutdownTimeoutMs'),
      kernel.config.get('server.drainDelayMs'),
    );
    if (!finished) kernel.logger.warn('shutdown deadline passed; closed the connections still open');
    await flushExporters(kernel);
    await kernel.stop();
  }
}

/** Asks every exporter to send what it buffered; one that fails or hangs is logged and skipped. */
async function flushExporters(kernel: Kernel): Promise<void> {
  const exporters = kernel.extensions.point(ExtensionPoints.exporter).list();
  await Promise.all(
    exporters.map(async (c) => {
      try {
        await Promise.race([
          c.value.flush?.(),
          new Promise((_, reject) => setTimeout(() => reject(new Error('flush timed out after 5 s')), 5000).unref()),
        ]);
      } catch (err) {
        kernel.logger.warn({ exporter: c.name, plugin: c.pluginId, err }, 'exporter flush failed');
      }
    }),
  );
}
