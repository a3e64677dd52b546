/** A structured logger: pino's call shape (`log.info({ key: value }, 'message')`). */
export interface Logger {
  trace(obj: object | string, msg?: string): void;
  debug(obj: object | string, msg?: string): void;
  info(obj: object | string, msg?: string): void;
  warn(obj: object | string, msg?: string): void;
  error(obj: object | string, msg?: string): void;
  fatal(obj: object | string, msg?: string): void;
  /** A logger that adds these fields to every line. */
  child(bindings: Record<string, unknown>): Logger;
}
