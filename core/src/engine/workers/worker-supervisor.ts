import type { Logger } from '@nucleus/sdk';
import { WorkerHandle, type WorkerIsolation } from './worker-handle.js';

/** A change in a worker's health, as {@link WorkerSupervisorOptions.onHealth} hears it. */
export interface WorkerHealth {
  healthy: boolean;
  reason?: string;
  /** Restarts of this worker so far. */
  restarts: number;
  /** Unhealthy: how long until the restart is tried (exponential backoff over the deaths in a row). */
  backoffMs?: number;
  /** Unhealthy: the worker died too often in a row and is not restarted any more. */
  gaveUp?: boolean;
}

/** Restarts in a row after which a worker that dies again is given up, unless `workers.maxRestarts` says otherwise. */
export const DEFAULT_MAX_RESTARTS = 5;

/** How a worker is started and kept running; the settings are functions so the config's changes reach the next start. */
export interface WorkerSupervisorOptions {
  /** What the worker runs: its thread's name and the logs say it (`session worker bert@1 died`). */
  kind: 'session' | 'generation';
  /** The model it serves, for logs and the thread's name. */
  label: string;
  logger?: Logger;
  /** A thread of this process (default) or a child process of its own. */
  isolation?: WorkerIsolation;
  /** Process isolation: see `WorkerHandleOptions.heartbeatTimeoutMs` (read at each start). */
  heartbeatTimeoutMs?: () => number;
  /** See `WorkerHandleOptions.niceness` (read at each start). */
  niceness?: () => number;
  /**
   * Restarts in a row (deaths with no progress in between) after which the next death gives the worker up
   * (`workers.maxRestarts`; read at each death). Default {@link DEFAULT_MAX_RESTARTS}.
   */
  maxConsecutiveRestarts?: () => number;
  /** Told when the worker dies (with the backoff before its restart, or `gaveUp`) and when it serves again. */
  onHealth?(health: WorkerHealth): void;
}

/** What a client does when its worker dies, as {@link WorkerSupervisor.died} decides. */
export interface WorkerDeathHandlers<T> {
  /** Starts the new worker, after the backoff. */
  restart(): Promise<T>;
  /** The worker died `deaths` times in a row and is given up; called before the health report says so. */
  gaveUp(deaths: number): void;
  /** Logged with the death. */
  context?: object;
}

/**
 * Keeps one worker (a thread, or a child process with its heartbeat watched) running for a client that speaks its
 * protocol: starts it with the settings of the moment, restarts it after a death with a backoff that doubles with
 * each death in a row (the first restart is immediate), gives it up after `workers.maxRestarts` deaths in a row, and
 * reports each change of health. The client says when its worker made progress, which ends a run of deaths.
 */
export class WorkerSupervisor {
  #restarts = 0;
  #consecutive = 0;
  /** Where the worker runs. */
  readonly isolation: WorkerIsolation;

  constructor(private readonly options: WorkerSupervisorOptions) {
    this.isolation = options.isolation ?? 'thread';
  }

  /** Times the worker died and was started again (or given up). */
  get restarts(): number {
    return this.#restarts;
  }

  /** Starts the worker body `entry` with `data` as its spec, under the heartbeat and niceness configured now. */
  spawn(entry: URL, data: unknown): WorkerHandle {
    const { heartbeatTimeoutMs, niceness } = this.options;
    return WorkerHandle.spawn(entry, data, {
      isolation: this.isolation,
      name: `${this.options.kind} ${this.options.label}`,
      ...(heartbeatTimeoutMs && { heartbeatTimeoutMs: heartbeatTimeoutMs() }),
      ...(niceness && { niceness: niceness() }),
    });
  }

  /** The worker got work done: the deaths before it no longer count as in a row. */
  progressed(): void {
    this.#consecutive = 0;
  }

  /**
   * The serving worker died (`why`, for logs; `reason`, for health reports). Gives it up when it died more than
   * `workers.maxRestarts` times in a row (undefined); otherwise returns the restart, run after the backoff.
   */
  died<T>(why: string, reason: string, handlers: WorkerDeathHandlers<T>): Promise<T> | undefined {
    const { kind, label, logger, onHealth } = this.options;
    this.#restarts++;
    this.#consecutive++;
    const maxRestarts = this.options.maxConsecutiveRestarts?.() ?? DEFAULT_MAX_RESTARTS;
    if (this.#consecutive > maxRestarts) {
      const deaths = this.#consecutive;
      this.#consecutive = 0;
      logger?.error({ model: label, restarts: this.#restarts, reason: why }, `${kind} worker keeps dying; giving up`);
      handlers.gaveUp(deaths);
      onHealth?.({ healthy: false, reason, restarts: this.#restarts, gaveUp: true });
      return undefined;
    }
    const backoffMs = this.#consecutive <= 1 ? 0 : Math.min(5000, 100 * 2 ** (this.#consecutive - 2));
    logger?.warn(
      { model: label, reason: why, restarts: this.#restarts, backoffMs, ...handlers.context },
      `${kind} worker died; starting a new one`,
    );
    onHealth?.({ healthy: false, reason, restarts: this.#restarts, backoffMs });
    const ready = new Promise<void>((r) => setTimeout(r, backoffMs)).then(() => handlers.restart());
    ready.catch((err: unknown) => logger?.error({ model: label, err }, `${kind} worker could not be restarted`));
    return ready;
  }

  /** A restarted worker serves again. */
  recovered(context: object = {}): void {
    this.options.logger?.info(
      { model: this.options.label, restarts: this.#restarts, ...context },
      `${this.options.kind} worker is serving again`,
    );
    this.options.onHealth?.({ healthy: true, restarts: this.#restarts });
  }
}
