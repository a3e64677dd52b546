import cluster from 'node:cluster';
import { Writable } from 'node:stream';
import type { Logger } from '@nucleus/sdk';
import { pino, type DestinationStream, type Level } from 'pino';
import { PinoPretty } from 'pino-pretty';

/** Log levels accepted in config. */
export type LogLevel = Level | 'silent';

/** `logging.format`: `auto` is pretty on a terminal and JSON otherwise. */
export type LogFormat = 'auto' | 'json' | 'pretty';

/** The format `auto` stands for on `stream`: pretty when it is a terminal, JSON when piped or redirected. */
export function resolveLogFormat(
  format: LogFormat | undefined,
  stream: { isTTY?: boolean } = process.stdout,
): 'json' | 'pretty' {
  if (format === 'json' || format === 'pretty') return format;
  return stream.isTTY === true ? 'pretty' : 'json';
}

// One line per event: time, level, message, then the fields as JSON on the same line (`component` only says which
// part of the server wrote it: noise on a terminal, useful to a log query).
const PRETTY_OPTIONS = {
  translateTime: 'SYS:HH:MM:ss.l',
  ignore: cluster.isWorker ? 'hostname,service,component' : 'pid,hostname,service,component',
  singleLine: true,
} as const;

/**
 * Creates the kernel's logger: one JSON object per line (for log shippers), or one readable line per event for a
 * terminal (`auto`: pretty when stdout is a terminal). Pretty lines written to stdout are formatted on a worker thread (a pino transport), so a request that
 * logs pays for JSON serialisation only. `destination` (tests, library use) gets the same lines, formatted in place.
 */
export function createLogger(
  options: { level?: LogLevel; format?: LogFormat; destination?: DestinationStream } = {},
): Logger & { level: string } {
  // A destination that is not stdout is never a terminal; no format at all means JSON, as before `auto` existed.
  const format =
    options.destination === undefined
      ? resolveLogFormat(options.format ?? 'json')
      : options.format === 'pretty'
        ? 'pretty'
        : 'json';
  let destination: DestinationStream | undefined = options.destination;
  if (format === 'pretty') {
    const colorize = options.destination === undefined && process.stdout.isTTY === true;
    destination =
      options.destination !== undefined
        ? PinoPretty({ ...PRETTY_OPTIONS, colorize: false, destination: asStream(options.destination), sync: true })
        : (pino.transport({
            target: 'pino-pretty',
            options: { ...PRETTY_OPTIONS, colorize, destination: 1, sync: true },
          }) as DestinationStream);
  }
  const listeners = new Set<(line: string) => void>();
  const logger = pino(
    {
      level: options.level ?? 'info',
      hooks: {
        streamWrite(line) {
          for (const listener of listeners) listener(line);
          return line;
        },
      },
      // One of several front processes (`server.processes`) says which, so their lines can be told apart.
      base: cluster.isWorker ? { service: 'nucleus', pid: process.pid } : { service: 'nucleus' },
      timestamp: pino.stdTimeFunctions.isoTime,
      // Pretty output shows labels; JSON keeps level names readable too, rather than numbers.
      formatters: format === 'pretty' ? {} : { level: (label) => ({ level: label }) },
    },
    destination,
  ) as unknown as Logger & { level: string };
  lineListeners.set(logger, listeners);
  return logger;
}

const lineListeners = new WeakMap<object, Set<(line: string) => void>>();

/**
 * Calls `listener` with each line a logger made by {@link createLogger} (or a child of it) writes, as pino serialised
 * it; returns the function that stops it. A logger made elsewhere has no lines to give: nothing is called.
 */
export function onLogLine(logger: Logger, listener: (line: string) => void): () => void {
  const listeners = lineListeners.get(logger);
  listeners?.add(listener);
  return () => listeners?.delete(listener);
}

/** Waits until what `logger` was given has been written (a transport writes from its own thread). */
export function flushLogger(logger: Logger): Promise<void> {
  const flush = (logger as unknown as { flush?: (cb?: (err?: Error) => void) => void }).flush;
  if (typeof flush !== 'function') return Promise.resolve();
  return new Promise((resolve) => flush.call(logger, () => resolve()));
}

// pino takes any object with `write`; pino-pretty pipes into a real stream.
function asStream(destination: DestinationStream): NodeJS.WritableStream {
  if (typeof (destination as Partial<NodeJS.WritableStream>).on === 'function')
    return destination as unknown as NodeJS.WritableStream;
  return new Writable({
    write(chunk: Buffer | string, _encoding, callback) {
      destination.write(chunk.toString());
      callback();
    },
  });
}
