import type { Logger } from '@nucleus/sdk';
import type { Logger as PinoLogger } from 'pino';

type Level = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal';
type Line = Parameters<Logger['info']>;

/**
 * A child logger that is made only when it writes a line. Most requests log nothing at the configured level, and
 * making a pino child (its bindings serialised, its prototype chain set up) for each one was a measurable share of a
 * small request's time. Levels are those of the logger it derives from, as a child made now would have them.
 */
export class LazyLogger implements Logger {
  private made?: Logger;

  constructor(
    private readonly parent: Logger,
    private readonly bindings: Record<string, unknown>,
  ) {}

  /** Whether a line at `level` would be written. */
  isLevelEnabled(level: Level): boolean {
    const parent = this.parent as Partial<Pick<PinoLogger, 'isLevelEnabled'>>;
    return parent.isLevelEnabled ? parent.isLevelEnabled(level) : true;
  }

  trace(...line: Line): void {
    this.write('trace', line);
  }

  debug(...line: Line): void {
    this.write('debug', line);
  }

  info(...line: Line): void {
    this.write('info', line);
  }

  warn(...line: Line): void {
    this.write('warn', line);
  }

  error(...line: Line): void {
    this.write('error', line);
  }

  fatal(...line: Line): void {
    this.write('fatal', line);
  }

  child(bindings: Record<string, unknown>): Logger {
    return new LazyLogger(this, bindings);
  }

  private write(level: Level, line: Line): void {
    if (this.isLevelEnabled(level)) this.real()[level](...line);
  }

  /** The logger itself, made from the parent's (itself made first when it is lazy too). */
  private real(): Logger {
    if (!this.made) {
      const parent = this.parent instanceof LazyLogger ? this.parent.real() : this.parent;
      this.made = parent.child(this.bindings);
    }
    return this.made;
  }
}
