import type { LogLine } from '@nucleus/sdk';

// pino's numeric levels, for lines written without the label formatter (pretty output).
const LEVELS: Record<number, LogLine['level']> = {
  10: 'trace',
  20: 'debug',
  30: 'info',
  40: 'warn',
  50: 'error',
  60: 'fatal',
};
const MAX_TEXT = 1000;

const text = (value: unknown): string | undefined =>
  typeof value === 'string' && value !== '' ? value.slice(0, MAX_TEXT) : undefined;

/**
 * The `log.line` event of one serialised pino line: only the fields a log tail shows, each bounded, so a payload the
 * line may carry (a prompt when `logging.logPayloads` is on) never leaves it. Undefined for a line that is not JSON.
 */
export function parseLogLine(line: string): LogLine | undefined {
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return undefined;
  }
  const level = typeof raw.level === 'number' ? LEVELS[raw.level] : (raw.level as LogLine['level']);
  if (!level || !Object.values(LEVELS).includes(level)) return undefined;
  const time = typeof raw.time === 'number' ? new Date(raw.time).toISOString() : text(raw.time);
  const err = raw.err as { message?: unknown } | undefined;
  const out: LogLine = { time: time ?? new Date().toISOString(), level, msg: text(raw.msg) ?? '' };
  const component = text(raw.component);
  const requestId = text(raw.requestId);
  const model = text(raw.model);
  const error = text(err?.message) ?? text(raw.error);
  if (component) out.component = component;
  if (requestId) out.requestId = requestId;
  if (model) out.model = model;
  if (error) out.error = error;
  return out;
}
