import type { Logger } from '@nucleus/sdk';
import { pino, type DestinationStream, type Level } from 'pino';
import { PinoPretty } from 'pino-pretty';

/** Log levels accepted in config. */
export type LogLevel = Level | 'silent';

/**
 * Creates the kernel's logger: one JSON object per line (for log shippers), or coloured text for a
 * terminal with `format: 'pretty'`. `destination` defaults to stdout.
 */
export function createLogger(options: { level?: LogLevel; format?: 'json' | 'pretty'; destination?: DestinationStream } = {}): Logger & { level: string } {
  const destination =
    options.format === 'pretty'
      ? PinoPretty({ colorize: process.stdout.isTTY ?? false, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname,service', destination: options.destination ?? 1, sync: true })
      : options.destination;
  return pino(
    {
      level: options.level ?? 'info',
      base: { service: 'nucleus' },
      timestamp: pino.stdTimeFunctions.isoTime,
      // Pretty output shows labels; JSON keeps level names readable too, rather than numbers.
      formatters: options.format === 'pretty' ? {} : { level: (label) => ({ level: label }) },
    },
    destination,
  ) as unknown as Logger & { level: string };
}
