import { createServer } from 'node:net';

/**
 * The server could not listen where the config says: a port in use, an address this machine does not have, a port
 * that needs privileges. The message says which key to change; the CLI exits 2, as for any config mistake.
 */
export class ListenError extends Error {
  override name = 'ListenError';

  constructor(
    message: string,
    /** The system's code: `EADDRINUSE`, `EADDRNOTAVAIL`, `EACCES` … */
    readonly code: string,
    readonly host: string,
    readonly port: number,
  ) {
    super(message);
  }
}

/** Turns a `listen` failure into a {@link ListenError} saying what to do; other errors come back unchanged. */
export function toListenError(err: unknown, host: string, port: number): unknown {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  switch (code) {
    case 'EADDRINUSE':
      return new ListenError(
        `port ${port} is in use by another process; pass --port or set server.port (0 picks a free port)`,
        code,
        host,
        port,
      );
    case 'EACCES':
      return new ListenError(
        `port ${port} on ${host} needs privileges this process does not have; pass --port with a port above 1023 or set server.port`,
        code,
        host,
        port,
      );
    case 'EADDRNOTAVAIL':
      return new ListenError(
        `${host} is not an address of this machine; pass --host or set server.host (127.0.0.1 for this machine only, 0.0.0.0 for every network interface)`,
        code,
        host,
        port,
      );
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return new ListenError(
        `host name ${host} does not resolve; pass --host or set server.host to an address, e.g. 127.0.0.1`,
        code,
        host,
        port,
      );
    default:
      return err;
  }
}

/**
 * Checks that `host`:`port` can be listened on now, by listening and closing at once; rejects with a
 * {@link ListenError}. Port 0 always can. Used before models load, so a taken port fails in a second, not after minutes.
 */
export async function probeListen(host: string, port: number): Promise<void> {
  if (port === 0) return;
  const probe = createServer();
  try {
    await new Promise<void>((resolve, reject) => {
      probe.once('error', reject);
      probe.listen({ host, port, exclusive: true }, () => resolve());
    });
  } catch (err) {
    throw toListenError(err, host, port);
  }
  await new Promise<void>((resolve) => probe.close(() => resolve()));
}
