import { performance } from 'node:perf_hooks';
import type { Logger, Progress, ProgressUnit } from '@nucleus/sdk';

/** Where a progress line is drawn: a terminal (stderr by default) with its width. */
export interface ProgressStream {
  readonly isTTY?: boolean;
  readonly columns?: number;
  write(text: string): unknown;
}

/** How a {@link ProgressReporter} shows operations; the defaults suit a server started by hand or by a supervisor. */
export interface ProgressReporterOptions {
  /** Gets a line every `logEveryMs` when `stream` is not a terminal, and a last line when a shown operation ends. */
  logger: Logger;
  /** Default `process.stderr`: progress stays out of stdout, where logs and the start-up line go. */
  stream?: ProgressStream;
  /** Milliseconds since some origin; `performance.now` by default (tests pass a fake clock). */
  now?: () => number;
  /** Operations that end sooner show nothing at all (default 2000). */
  quietMs?: number;
  /** Not a terminal: a log line at most this often (default 2000). */
  logEveryMs?: number;
  /** A terminal: the line is redrawn at most this often (default 100). */
  redrawMs?: number;
}

/**
 * The server's {@link Progress}: on a terminal, one line redrawn in place (several operations at once share it);
 * otherwise a log line every couple of seconds. Either way an operation shorter than `quietMs` shows nothing, so
 * small models load as quietly as before. Driven by `advance` calls, not timers: nothing runs between them.
 */
export class ProgressReporter {
  private readonly now: () => number;
  private readonly stream: ProgressStream;

  constructor(private readonly options: ProgressReporterOptions) {
    this.now = options.now ?? (() => performance.now());
    this.stream = options.stream ?? process.stderr;
  }

  /** A fresh {@link Progress} for one operation. */
  create(): Progress {
    return this.stream.isTTY === true
      ? new TerminalProgress(this.options, this.now, lineOf(this.stream))
      : new LoggedProgress(this.options, this.now);
  }
}

/** The state every kind of progress keeps. */
abstract class Operation implements Progress {
  label = '';
  total = 0;
  unit: ProgressUnit = 'items';
  completed = 0;
  startedAt = 0;
  /** Whether the user has seen it, so its end is worth a line. */
  shown = false;
  ended = true;

  constructor(
    protected readonly options: ProgressReporterOptions,
    protected readonly now: () => number,
  ) {}

  start(total: number, label: string, unit: ProgressUnit = 'items'): void {
    Object.assign(this, {
      total: Math.max(0, total),
      label,
      unit,
      completed: 0,
      startedAt: this.now(),
      shown: false,
      ended: false,
    });
  }

  advance(units: number): void {
    if (this.ended) return;
    this.completed += units;
    const at = this.now();
    if (at - this.startedAt >= (this.options.quietMs ?? 2000)) this.update(at);
  }

  done(): void {
    if (this.ended) return;
    this.ended = true;
    this.finish();
    if (this.shown) {
      const durationMs = Math.round(this.now() - this.startedAt);
      this.options.logger.info(
        { operation: this.label, durationMs },
        `${this.label}: done in ${(durationMs / 1000).toFixed(1)} s`,
      );
    }
  }

  /** `45% (1.2 / 4.0 GiB, 310 MB/s)`, or just the amount when the total is unknown; the rate once a second passed. */
  describe(at = this.now()): string {
    const amount = (n: number) => (this.unit === 'bytes' ? formatBytes(n) : String(n));
    const seconds = (at - this.startedAt) / 1000;
    let rate = this.unit === 'bytes' && seconds >= 1 ? `, ${(this.completed / seconds / 1e6).toFixed(0)} MB/s` : '';
    if (this.unit === 'rows' && seconds >= 1) {
      const perSecond = this.completed / seconds;
      rate = `, ${Math.round(perSecond)} rows/s`;
      if (this.total > this.completed && perSecond > 0)
        rate += `, ETA ${formatDuration((this.total - this.completed) / perSecond)}`;
    }
    if (this.total === 0) return `${amount(this.completed)}${rate}`;
    return `${Math.min(100, Math.floor((this.completed / this.total) * 100))}% (${amount(this.completed)} / ${amount(this.total)}${rate})`;
  }

  protected abstract update(at: number): void;
  protected abstract finish(): void;
}

/** Not a terminal: a log line every `logEveryMs`. */
class LoggedProgress extends Operation {
  private lastLog = 0;

  override start(total: number, label: string, unit?: ProgressUnit): void {
    super.start(total, label, unit);
    this.lastLog = this.startedAt;
  }

  protected update(at: number): void {
    const every = this.options.logEveryMs ?? 2000;
    if (this.shown && at - this.lastLog < every) return;
    this.lastLog = at;
    this.shown = true;
    const percent = this.total > 0 ? Math.min(100, Math.floor((this.completed / this.total) * 100)) : undefined;
    this.options.logger.info(
      {
        operation: this.label,
        completed: this.completed,
        total: this.total,
        unit: this.unit,
        ...(percent !== undefined && { percent }),
        elapsedMs: Math.round(at - this.startedAt),
      },
      `${this.label}: ${this.describe(at)}`,
    );
  }

  protected finish(): void {}
}

/** A terminal: this operation's part of the shared line. */
class TerminalProgress extends Operation {
  constructor(
    options: ProgressReporterOptions,
    now: () => number,
    private readonly line: TerminalLine,
  ) {
    super(options, now);
  }

  protected update(at: number): void {
    this.shown = true;
    this.line.show(this, at, this.options.redrawMs ?? 100);
  }

  protected finish(): void {
    this.line.remove(this);
  }

  /** `label [#####-----] 45% (…) 3 s`. */
  render(at: number): string {
    const width = 20;
    const bar =
      this.total > 0
        ? `[${'#'.repeat(Math.round((Math.min(this.completed, this.total) / this.total) * width)).padEnd(width, '-')}] `
        : '';
    return `${this.label} ${bar}${this.describe(at)} ${Math.round((at - this.startedAt) / 1000)} s`;
  }
}

/** The one line a terminal shows for every running operation, redrawn in place with `\r` and erase-line. */
class TerminalLine {
  private readonly operations = new Set<TerminalProgress>();
  private lastDraw = -Infinity;
  private drawn = false;

  constructor(private readonly stream: ProgressStream) {}

  show(operation: TerminalProgress, at: number, redrawMs: number): void {
    this.operations.add(operation);
    if (at - this.lastDraw < redrawMs) return;
    this.lastDraw = at;
    const text = [...this.operations].map((o) => o.render(at)).join(' · ');
    const columns = this.stream.columns ?? 80;
    this.stream.write(`\r\x1b[K${text.length >= columns ? `${text.slice(0, columns - 2)}…` : text}`);
    this.drawn = true;
  }

  remove(operation: TerminalProgress): void {
    if (!this.operations.delete(operation)) return;
    // The others are redrawn at their next advance; until then the line stays clear.
    if (this.drawn) this.stream.write('\r\x1b[K');
    this.drawn = false;
    this.lastDraw = -Infinity;
  }
}

const lines = new WeakMap<ProgressStream, TerminalLine>();

// One line per terminal, whichever reporter draws on it.
function lineOf(stream: ProgressStream): TerminalLine {
  let line = lines.get(stream);
  if (line === undefined) lines.set(stream, (line = new TerminalLine(stream)));
  return line;
}

/** `42 s`, `3 min 20 s`, `1 h 05 min`. */
function formatDuration(seconds: number): string {
  const s = Math.ceil(seconds);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, '0')} s`;
  return `${Math.floor(s / 3600)} h ${String(Math.floor((s % 3600) / 60)).padStart(2, '0')} min`;
}

function formatBytes(n: number): string {
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(0)} KiB`;
  if (n < 1024 ** 3) return `${(n / 1024 ** 2).toFixed(1)} MiB`;
  return `${(n / 1024 ** 3).toFixed(2)} GiB`;
}
