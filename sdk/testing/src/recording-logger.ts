import type { Logger } from '@nucleus/sdk';

/** One line a component logged. */
export interface LogLine {
  level: string;
  fields: object | string;
  msg?: string;
}

/** A logger that keeps its lines, so a test can read what an operator would see. */
export function recordingLogger(lines: LogLine[] = []): Logger & { lines: LogLine[] } {
  const at =
    (level: string) =>
    (fields: object | string, msg?: string): void => {
      lines.push({ level, fields, ...(msg === undefined ? {} : { msg }) });
    };
  return {
    lines,
    trace: at('trace'),
    debug: at('debug'),
    info: at('info'),
    warn: at('warn'),
    error: at('error'),
    fatal: at('fatal'),
    child: () => recordingLogger(lines),
  };
}
