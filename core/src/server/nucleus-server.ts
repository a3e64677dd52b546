import { Kernel, type KernelOptions } from '../kernel/kernel.js';
import { HttpServer } from './http-server.js';

/** A running Nucleus: its kernel, its HTTP server and the URL it answers on. */
export class NucleusServer {
  private constructor(
    readonly kernel: Kernel,
    readonly http: HttpServer,
    readonly url: string,
  ) {}

  /** Builds the kernel, activates plugins and listens on `server.host`:`server.port` from the config. */
  static async start(options: KernelOptions = {}): Promise<NucleusServer> {
    const kernel = Kernel.create(options);
    await kernel.start();
    const http = new HttpServer(kernel);
    try {
      const { url } = await http.listen(kernel.config.get('server.host') as string, kernel.config.get('server.port') as number);
      kernel.logger.info({ url, plugins: kernel.plugins.list().filter((p) => p.state === 'active').map((p) => `${p.id}@${p.version}`) }, 'nucleus listening');
      return new NucleusServer(kernel, http, url);
    } catch (err) {
      await kernel.stop();
      throw err;
    }
  }

  /** Stops taking requests (readiness goes 503), waits for open ones, then deactivates plugins. */
  async stop(): Promise<void> {
    this.kernel.health.setPhase('stopping');
    await this.http.close();
    await this.kernel.stop();
  }
}
