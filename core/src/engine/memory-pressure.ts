import { freemem } from 'node:os';
import type { EventBus, Logger } from '@nucleus/sdk';
import type { ConfigStore } from '../kernel/config/index.js';

/** What `/server/stats` and the `memory.pressure` event say about memory pressure. */
export interface MemoryPressureStatus {
  underPressure: boolean;
  /** Memory free (available to allocate) at the last check. */
  freeBytes: number;
  /** `memory.pressureFreeBytes`; 0 when the check is off. */
  thresholdBytes: number;
}

/** Options of a {@link MemoryPressure} monitor. */
export interface MemoryPressureOptions {
  config: Pick<ConfigStore, 'get'> & Partial<Pick<ConfigStore, 'onChange'>>;
  events: EventBus;
  logger: Logger;
  /** Memory free now; `os.freemem()` (the kernel's MemAvailable on Linux) unless given. */
  freeBytes?: () => number;
}

// Leaving pressure needs this much more than the threshold free, so that the engines do not flap at the edge.
const RELEASE_MARGIN = 1.1;

/**
 * Watches free memory against `memory.pressureFreeBytes` every `memory.checkIntervalMs`. Under pressure the engines
 * take less at once: {@link MemoryPressure.shrink} halves batch sizes and running sequences, and the LLM prefix
 * caches evict down to half their budget; when enough memory is free again they recover. Each change is a
 * `memory.pressure` event and a log line.
 */
export class MemoryPressure {
  #status: MemoryPressureStatus = { underPressure: false, freeBytes: 0, thresholdBytes: 0 };
  #timer: NodeJS.Timeout | undefined;
  #offConfig: (() => void) | undefined;
  readonly #listeners = new Set<(underPressure: boolean) => void>();
  readonly #free: () => number;
  readonly #log: Logger;

  constructor(private readonly options: MemoryPressureOptions) {
    this.#free = options.freeBytes ?? freemem;
    this.#log = options.logger.child({ component: 'memory' });
  }

  /** Whether the server is short of memory now. */
  get underPressure(): boolean {
    return this.#status.underPressure;
  }

  /** The state at the last check. */
  status(): MemoryPressureStatus {
    return { ...this.#status };
  }

  /** A size (batch size, running sequences, cache bytes) as it applies now: halved under pressure, at least 1. */
  shrink(size: number): number {
    return this.#status.underPressure ? Math.max(1, Math.floor(size / 2)) : size;
  }

  /** Calls `listener` whenever pressure starts or ends. */
  onChange(listener: (underPressure: boolean) => void): () => void {
    this.#listeners.add(listener);
    return () => void this.#listeners.delete(listener);
  }

  /** Checks now and then every `memory.checkIntervalMs`; a change of `memory.*` checks at once. */
  start(): void {
    this.stop();
    this.check();
    this.#schedule();
    this.#offConfig = this.options.config.onChange?.((path) => {
      if (!path.startsWith('memory')) return;
      this.#schedule();
      this.check();
    });
  }

  /** Stops checking. */
  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
    this.#offConfig?.();
    this.#offConfig = undefined;
  }

  /** Measures free memory and enters or leaves pressure. */
  check(): MemoryPressureStatus {
    const threshold = this.options.config.get('memory.pressureFreeBytes');
    const free = this.#free();
    const was = this.#status.underPressure;
    const under = threshold > 0 && (was ? free < threshold * RELEASE_MARGIN : free < threshold);
    this.#status = { underPressure: under, freeBytes: free, thresholdBytes: threshold };
    if (under !== was) {
      this.options.events.emit('memory.pressure', { ...this.#status });
      if (under)
        this.#log.warn(
          { freeBytes: free, thresholdBytes: threshold },
          'memory pressure: batch sizes and running sequences halved, prefix caches evict to half',
        );
      else
        this.#log.info(
          { freeBytes: free, thresholdBytes: threshold },
          'memory pressure over: batch sizes and caches back to their settings',
        );
      for (const listener of this.#listeners) listener(under);
    }
    return this.status();
  }

  #schedule(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = setInterval(() => this.check(), Math.max(10, this.options.config.get('memory.checkIntervalMs')));
    this.#timer.unref();
  }
}
