import { unavailable, type NucleusError } from '@nucleus/sdk';

/** The back-off's bounds, read at each failure so that runtime changes apply to the next one. */
export interface LoadBackoffSettings {
  /** The wait after the first failure; 0 lets every request try again. */
  initialMs: number;
  /** The longest wait, however many failures in a row. */
  maxMs: number;
}

/** What `/status` shows of a model that failed to load and waits before the next attempt. */
export interface LoadBackoffStatus {
  /** Failed attempts in a row. */
  failures: number;
  /** The last failure's reason, as a request is told it (no paths beyond the configured one). */
  reason: string;
  /** When the next attempt may start (ISO 8601); requests before then are refused without one. */
  retryAt: string;
  /** Milliseconds until then; 0 once the next request may try. */
  retryAfterMs: number;
}

/**
 * When a model that failed to load may be tried again. Loads start from requests (a model opened on first use, or
 * again after a failure), so without a pause a broken or hostile file would cost a full load per request: after each
 * failure in a row the wait doubles, from `initialMs` up to `maxMs`, and requests meanwhile get 503
 * `model_unavailable` with `Retry-After` and the last failure's reason. A successful load, an explicit admin load or
 * swap (a model of its own) and a change of the model's config entry start it over.
 */
export class LoadBackoff {
  #failures = 0;
  #retryAt = 0;
  #reason = '';
  readonly #now: () => number;

  constructor(
    private readonly settings: () => LoadBackoffSettings,
    now: () => number = Date.now,
  ) {
    this.#now = now;
  }

  /** Records a failed attempt with the reason a request may be told; returns how long until the next may start. */
  failed(reason: string): number {
    const { initialMs, maxMs } = this.settings();
    // 2^30 times any wait is past every sensible cap; the exponent stops there so the product stays finite.
    const delayMs = Math.min(maxMs, initialMs * 2 ** Math.min(this.#failures, 30));
    this.#failures++;
    this.#reason = reason;
    this.#retryAt = this.#now() + delayMs;
    return delayMs;
  }

  /** Forgets the failures: the next request tries at once. */
  reset(): void {
    this.#failures = 0;
    this.#retryAt = 0;
    this.#reason = '';
  }

  /** Failed attempts in a row. */
  get failures(): number {
    return this.#failures;
  }

  /** When the next attempt may start (epoch ms); 0 without failures. */
  get retryAt(): number {
    return this.#retryAt;
  }

  /** Milliseconds until the next attempt may start; 0 when it may start now. */
  remainingMs(): number {
    return this.#failures === 0 ? 0 : Math.max(0, this.#retryAt - this.#now());
  }

  /**
   * 503 `model_unavailable` for a request that may not start an attempt now (`Retry-After`: whole seconds until the
   * next one, at least 1), naming `model` and the last failure; undefined when it may.
   */
  refusal(model: string): NucleusError | undefined {
    const left = this.remainingMs();
    if (left <= 0) return undefined;
    return this.error(model, left);
  }

  /** The 503 a request gets `leftMs` before the next attempt (the one whose attempt just failed gets it too). */
  error(model: string, leftMs: number): NucleusError {
    const seconds = Math.max(1, Math.ceil(leftMs / 1000));
    return unavailable(
      'model_unavailable',
      `model '${model}' could not be loaded: ${this.#reason}; it is tried again on a request after ${new Date(this.#retryAt).toISOString()} (in ${seconds} s, attempt ${this.#failures + 1}); an admin load or swap, or a change of its config entry, tries at once`,
      seconds,
    );
  }

  /** The failure and the next attempt's time, while there have been failures. */
  status(): LoadBackoffStatus | undefined {
    if (this.#failures === 0) return undefined;
    return {
      failures: this.#failures,
      reason: this.#reason,
      retryAt: new Date(this.#retryAt).toISOString(),
      retryAfterMs: this.remainingMs(),
    };
  }
}
