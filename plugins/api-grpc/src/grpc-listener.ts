import { readFileSync } from 'node:fs';
import { Server, ServerCredentials, type ServiceDefinition, type UntypedServiceImplementation } from '@grpc/grpc-js';

/** `server.tls` as the config gives it (the HTTP server's certificate serves gRPC too). */
export interface TlsSettings {
  cert?: string;
  key?: string;
  ca?: string;
  clientAuth?: 'none' | 'optional' | 'require';
}

/** Server credentials for `server.tls`: TLS with its certificate (and client CA) when set, else plaintext. */
export function credentialsFor(tls: TlsSettings | undefined): ServerCredentials {
  if (!tls?.cert || !tls.key) return ServerCredentials.createInsecure();
  const read = (path: string, key: string) => {
    try {
      return readFileSync(path);
    } catch (err) {
      throw new Error(`server.tls.${key}: cannot read ${path}: ${(err as Error).message}`);
    }
  };
  const ca = tls.ca && tls.clientAuth !== 'none' ? read(tls.ca, 'ca') : null;
  return ServerCredentials.createSsl(
    ca,
    [{ cert_chain: read(tls.cert, 'cert'), private_key: read(tls.key, 'key') }],
    tls.clientAuth === 'require',
  );
}

/** A bound gRPC server and the activation whose handlers it serves. */
interface Listener {
  server: Server;
  port: number;
  owner: object;
  definition: ServiceDefinition;
}

// Kept on the process, not in this module: a hot-reloaded plugin loads its files afresh, and the new activation starts
// while the old one still holds the port. It takes the running listener over (swapping the handlers in) instead of
// racing the old instance for the port; the old one then leaves the listener alone when it is disposed.
const REGISTRY = Symbol.for('nucleus.api-grpc.listeners');
const listeners = ((globalThis as Record<symbol, unknown>)[REGISTRY] ??= new Map<string, Listener>()) as Map<
  string,
  Listener
>;

/** The address grpc-js binds: IPv6 literals in brackets. */
function address(host: string, port: number): string {
  return `${host.includes(':') ? `[${host}]` : host}:${port}`;
}

/** Where a GrpcListener listens. */
export interface ListenOptions {
  host: string;
  /** 0: a free port of the system's choosing, never shared with another activation. */
  port: number;
  credentials: ServerCredentials;
  /** Identifies the credentials, so that a reload with other TLS settings binds afresh rather than reusing. */
  credentialsKey: string;
  maxMessageBytes: number;
}

/**
 * The gRPC server of one plugin activation: binds (or takes over the one a previous activation of the plugin bound
 * at the same address) and closes cleanly, waiting a bounded time for calls in flight.
 */
export class GrpcListener {
  private constructor(
    private readonly key: string | undefined,
    private readonly listener: Listener,
  ) {}

  /** The port it listens on (the one chosen, when asked for 0). */
  get port(): number {
    return this.listener.port;
  }

  /** Binds `implementation` at the address, or swaps it into the listener already bound there by this plugin. */
  static async listen(
    definition: ServiceDefinition,
    implementation: UntypedServiceImplementation,
    options: ListenOptions,
  ): Promise<GrpcListener> {
    const key =
      options.port === 0
        ? undefined
        : `${address(options.host, options.port)}|${options.credentialsKey}|${options.maxMessageBytes}`;
    const running = key ? listeners.get(key) : undefined;
    if (running && key) {
      running.server.removeService(running.definition);
      running.server.addService(definition, implementation);
      const taken = new GrpcListener(key, running);
      running.owner = taken;
      running.definition = definition;
      return taken;
    }
    const server = new Server({
      'grpc.max_receive_message_length': options.maxMessageBytes,
      'grpc.max_send_message_length': -1,
    });
    server.addService(definition, implementation);
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync(address(options.host, options.port), options.credentials, (err, bound) =>
        err ? reject(err) : resolve(bound),
      ),
    );
    const listener: Listener = { server, port, owner: {}, definition };
    const made = new GrpcListener(key, listener);
    listener.owner = made;
    if (key) listeners.set(key, listener);
    return made;
  }

  /**
   * Stops taking calls and waits up to `graceMs` for those in flight, then cancels the rest. Does nothing to a
   * listener a newer activation took over (its calls are that activation's now).
   */
  async close(graceMs: number): Promise<void> {
    const { listener } = this;
    if (listener.owner !== this) return;
    if (this.key) listeners.delete(this.key);
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        listener.server.forceShutdown();
        resolve();
      }, graceMs);
      listener.server.tryShutdown(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }
}
