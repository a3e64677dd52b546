import type { Logger } from '@nucleus/sdk';
import { pino, type DestinationStream, type Level } from 'pino';

/** Log levels accepted in config. */
export type LogLevel = Level | 'silent';

/** Creates the kernel's JSON logger; `destination` defaults to stdout. */
export function createLogger(options: { level?: LogLevel; destination?: DestinationStream } = {}): Logger & { level: string } {
  return pino(
    {
      level: options.level ?? 'info',
      base: { service: 'nucleus' },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    options.destination,
  ) as unknown as Logger & { level: string };
}
