import { readFileSync } from 'node:fs';
import type { Server as HttpsServer } from 'node:https';
import { createSecureContext, type SecureContextOptions } from 'node:tls';
import type { Logger } from '@nucleus/sdk';
import { watch, type FSWatcher } from 'chokidar';
import type { NucleusConfig } from '../kernel/config/index.js';

/** `server.tls` from the config. */
export type TlsConfig = NucleusConfig['server']['tls'];

/** A certificate file that cannot be read or used; the message names the config key. */
export class TlsConfigError extends Error {
  override name = 'TlsConfigError';
}

/**
 * The server's certificate, key and client CA as `server.tls` names them: read at start (a file that cannot be read
 * or a key that does not match its certificate stops the start), then watched, and put in place on the running server
 * whenever a file changes — new connections get the new certificate, open ones keep theirs. A change that does not
 * load (a half-written file, a key that does not match yet) is logged and the previous certificate stays until the
 * next change.
 */
export class TlsCertificates {
  private watcher?: FSWatcher;
  private timer?: NodeJS.Timeout;

  constructor(
    private readonly config: TlsConfig & { cert: string; key: string },
    private readonly logger: Logger,
    private readonly debounceMs = 200,
  ) {}

  /** `server.tls` as certificates, or undefined while it names none (plain HTTP). */
  static fromConfig(config: TlsConfig, logger: Logger): TlsCertificates | undefined {
    const { cert, key } = config;
    if (!cert || !key) return undefined;
    return new TlsCertificates({ ...config, cert, key }, logger);
  }

  /** The options for `https.createServer`: the files' contents, TLS 1.2 at least, and the client-certificate policy. */
  serverOptions(): SecureContextOptions & { requestCert: boolean; rejectUnauthorized: boolean } {
    const clientAuth = this.config.clientAuth;
    return {
      ...this.read(),
      minVersion: 'TLSv1.2',
      requestCert: clientAuth !== 'none',
      // `optional`: a client without a certificate, or with one the CA did not sign, still connects; its requests are
      // then authenticated like any other (a key or token), and `socket.authorized` stays false.
      rejectUnauthorized: clientAuth === 'require',
    };
  }

  /** Starts watching the files; each change loads them again into `server`. */
  async watch(server: HttpsServer): Promise<void> {
    const files = [this.config.cert, this.config.key, ...(this.config.ca ? [this.config.ca] : [])];
    this.watcher = watch(files, { ignoreInitial: true });
    // Certificate and key are usually replaced one after the other: load once both have landed.
    this.watcher.on('all', () => {
      clearTimeout(this.timer);
      this.timer = setTimeout(() => this.reload(server), this.debounceMs);
    });
    this.watcher.on('error', (err) => this.logger.warn({ err }, 'TLS certificate watcher error'));
    await new Promise<void>((resolve) => this.watcher!.once('ready', () => resolve()));
  }

  /** Stops watching. */
  async close(): Promise<void> {
    clearTimeout(this.timer);
    await this.watcher?.close();
    this.watcher = undefined;
  }

  private reload(server: HttpsServer): void {
    try {
      const options = { ...this.read(), minVersion: 'TLSv1.2' as const };
      server.setSecureContext(options);
      this.logger.info({ cert: this.config.cert }, 'TLS certificate reloaded');
    } catch (err) {
      this.logger.error(
        { cert: this.config.cert, err: (err as Error).message },
        'TLS certificate change not applied; the previous certificate stays in use',
      );
    }
  }

  // Read and checked together: `createSecureContext` throws when the key does not match the certificate.
  private read(): { cert: Buffer; key: Buffer; ca?: Buffer } {
    const file = (name: 'cert' | 'key' | 'ca', path: string): Buffer => {
      try {
        return readFileSync(path);
      } catch (err) {
        throw new TlsConfigError(`server.tls.${name}: cannot read ${path}: ${(err as Error).message}`);
      }
    };
    const files = {
      cert: file('cert', this.config.cert),
      key: file('key', this.config.key),
      ...(this.config.ca ? { ca: file('ca', this.config.ca) } : {}),
    };
    try {
      createSecureContext(files);
    } catch (err) {
      throw new TlsConfigError(
        `server.tls: ${this.config.cert} and ${this.config.key} are not a usable certificate and key: ${(err as Error).message}`,
      );
    }
    return files;
  }
}
