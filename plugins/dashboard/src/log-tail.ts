import type { LogLine } from '@nucleus/sdk';

/** The latest log lines, at most `max`: what a fresh page's log tail starts from before `/ws` brings new ones. */
export class LogTail {
  readonly #lines: LogLine[] = [];

  constructor(private readonly max: number) {}

  add(line: LogLine): void {
    this.#lines.push(line);
    if (this.#lines.length > this.max) this.#lines.splice(0, this.#lines.length - this.max);
  }

  /** Oldest first. */
  list(): LogLine[] {
    return [...this.#lines];
  }
}
