import { basename, dirname } from 'node:path';
import type { Writable } from 'node:stream';
import type { Logger, NucleusEvents } from '@nucleus/sdk';
import { createStream } from 'rotating-file-stream';

/** One line of the audit trail. */
export interface AuditEntry {
  /** ISO time the request was answered. */
  time: string;
  requestId: string;
  /** The key's name (or its role when unnamed); absent when the request carried no valid key. Never the key. */
  key?: string;
  /** Who acted without a key: `watcher` for a plugin reload the file watcher started. */
  actor?: string;
  /** The client's address, as the server's socket saw it. */
  address: string;
  /** `plugins.enable`, `config.update`, `models.swap` …, or `auth.refused`. */
  action: string;
  /** What it acted on: a plugin id, a model name (and version), config keys; for a refusal, the request's method and path. */
  target?: string;
  outcome: 'ok' | 'failed' | 'refused';
  status: number;
  /** The error code of a failure or refusal. */
  errorCode?: string;
  method: string;
  /** The route (`/admin/models/:name/swap`) or, for a refusal, the path. */
  route: string;
  durationMs?: number;
}

/** Where the lines go: a file of their own (rotated by size), stdout, or the server log. */
export type AuditDestination =
  | { file: string; maxBytes: number; maxFiles: number }
  | { stdout: true }
  | { logger: Logger };

/** The entry an `admin.action` event becomes. */
export function actionEntry(e: NucleusEvents['admin.action'], now = new Date()): AuditEntry {
  return {
    time: now.toISOString(),
    requestId: e.requestId,
    ...(e.key !== undefined && { key: e.key }),
    ...(e.actor !== undefined && { actor: e.actor }),
    address: e.address,
    action: e.action,
    ...(e.target !== undefined && { target: e.target }),
    outcome: e.outcome,
    status: e.status,
    ...(e.errorCode !== undefined && { errorCode: e.errorCode }),
    method: e.method,
    route: e.route,
    durationMs: Math.round(e.durationMs * 10) / 10,
  };
}

/** The entry an `auth.refused` event becomes. */
export function refusalEntry(e: NucleusEvents['auth.refused'], now = new Date()): AuditEntry {
  return {
    time: now.toISOString(),
    requestId: e.requestId,
    ...(e.key !== undefined && { key: e.key }),
    address: e.address,
    action: 'auth.refused',
    target: `${e.method} ${e.path}`,
    outcome: 'refused',
    status: e.status,
    ...(e.errorCode !== undefined && { errorCode: e.errorCode }),
    method: e.method,
    route: e.path,
  };
}

/**
 * The audit trail: one JSON line per entry, appended in order. A file is opened for appending (what it held stays),
 * created readable by its owner and group only, and rotated past `maxBytes` the way logrotate does (`audit.log` →
 * `audit.log.1` …, keeping `maxFiles`).
 */
export class AuditTrail {
  readonly #out: Writable | undefined;
  readonly #logger: Logger | undefined;
  #failed = false;

  constructor(destination: AuditDestination, logger: Logger) {
    if ('file' in destination) {
      // With `rotate`, the library names rotated files as logrotate does: `audit.log.1` is the newest.
      const stream = createStream(basename(destination.file), {
        path: dirname(destination.file),
        size: `${destination.maxBytes}B`,
        rotate: destination.maxFiles,
        mode: 0o640,
      });
      // A trail that cannot be written is said loudly once; the server keeps serving.
      stream.on('error', (err) => {
        if (!this.#failed) logger.error({ err, file: destination.file }, 'audit log cannot be written');
        this.#failed = true;
      });
      this.#out = stream;
    } else if ('stdout' in destination) this.#out = process.stdout;
    else this.#logger = destination.logger;
  }

  record(entry: AuditEntry): void {
    if (this.#logger) this.#logger.info({ audit: entry }, 'audit');
    else this.#out!.write(`${JSON.stringify(entry)}\n`);
  }

  /** Writes what is buffered and closes the file (stdout stays open). */
  async close(): Promise<void> {
    const out = this.#out;
    if (!out || out === process.stdout || out.destroyed) return;
    await new Promise<void>((resolve) => {
      out.once('error', () => resolve());
      out.end(() => resolve());
    });
  }
}
