import { unavailable, type NucleusError } from '@nucleus/sdk';

/** `closed` serves; `open` fails fast; `half-open` lets one trial request through to decide. */
export type BreakerState = 'closed' | 'open' | 'half-open';

/** What `/status` shows about a breaker. */
export interface BreakerStatus {
  state: BreakerState;
  consecutiveFailures: number;
  /** While open: how long until a trial request is let through. */
  retryAfterMs?: number;
  /** The failure that opened it. */
  reason?: string;
}

/** Options of a {@link CircuitBreaker}. */
export interface CircuitBreakerOptions {
  /** `model 'x' version '1'`, for messages. */
  label: string;
  /** Read on every failure and check, so runtime changes apply at once. */
  settings(): { failureThreshold: number; cooldownMs: number };
  /** Told on every state change. */
  onChange?(state: BreakerState, reason: string): void;
  now?: () => number;
}

// Failures that are the server's fault: a run that errored, a worker that died, hung or cannot start. Client errors,
// queue timeouts, load shedding and unloading say nothing about whether the model works.
const SERVER_FAULTS = new Set([
  'inference_failed',
  'worker_exited',
  'worker_unavailable',
  'worker_hung',
  'generation_failed',
]);

/** Whether an error counts against a breaker. */
export function isServerFault(err: unknown): boolean {
  const e = err as Partial<NucleusError> | undefined;
  if (typeof e?.code === 'string' && SERVER_FAULTS.has(e.code)) return true;
  return e?.status === 500;
}

/**
 * A per-model-version circuit breaker: after `failureThreshold` server-side failures in a row, requests fail fast
 * with 503 `circuit_open` (and Retry-After) for `cooldownMs`; then one trial request is let through, and its
 * success closes the breaker while its failure opens it for another cool-down.
 */
export class CircuitBreaker {
  #state: BreakerState = 'closed';
  #failures = 0;
  #openedAt = 0;
  #reason: string | undefined;
  #trial = false;
  // One crash or one failed batch rejects many requests with the same error; it is one failure, not many.
  readonly #counted = new WeakSet<object>();
  // The same for failures that reach requests as separate error objects (one failed generation step), by their key.
  readonly #countedKeys = new Set<string>();
  readonly #now: () => number;

  constructor(private readonly options: CircuitBreakerOptions) {
    this.#now = options.now ?? Date.now;
  }

  /** Lets a request through, or throws 503 `circuit_open`; a request let through must end in `succeeded`, `failed` or `ignored`. */
  admit(): void {
    if (this.#state === 'closed') return;
    const { cooldownMs } = this.options.settings();
    if (this.#state === 'open') {
      const left = this.#openedAt + cooldownMs - this.#now();
      if (left > 0) throw this.#refusal(left);
      this.#set('half-open', 'cool-down over; trying one request');
    }
    if (this.#trial) throw this.#refusal(1000);
    this.#trial = true;
  }

  /** A request let through succeeded. */
  succeeded(): void {
    this.#failures = 0;
    this.#trial = false;
    if (this.#state !== 'closed') {
      this.#reason = undefined;
      this.#set('closed', 'a request succeeded');
    }
  }

  /**
   * A request let through failed; only server faults (see {@link isServerFault}) count, each error object once, and
   * each `failureKey` once (errors of several requests that one failure caused).
   */
  failed(err: unknown, failureKey?: string): void {
    if (!isServerFault(err)) return this.ignored();
    if (typeof err === 'object' && err !== null) {
      if (this.#counted.has(err)) return this.ignored();
      this.#counted.add(err);
    }
    if (failureKey !== undefined) {
      if (this.#countedKeys.has(failureKey)) return this.ignored();
      this.#countedKeys.add(failureKey);
      // Keys only matter while the requests of one failure end; keep the set small.
      if (this.#countedKeys.size > 256) this.#countedKeys.delete(this.#countedKeys.values().next().value!);
    }
    this.#failures++;
    const reason = (err as Error).message;
    const wasTrial = this.#trial;
    this.#trial = false;
    if (this.#state === 'half-open' && wasTrial) return this.#open(`the trial request failed: ${reason}`);
    if (this.#state === 'closed' && this.#failures >= this.options.settings().failureThreshold) {
      this.#open(`${this.#failures} failures in a row; last: ${reason}`);
    }
  }

  /** A request let through ended in a way that says nothing about the model (a 400, a cancel, a queue timeout). */
  ignored(): void {
    this.#trial = false;
  }

  /** The state now (an open breaker whose cool-down is over reads as half-open). */
  status(): BreakerStatus {
    const { cooldownMs } = this.options.settings();
    const left = this.#openedAt + cooldownMs - this.#now();
    const state = this.#state === 'open' && left <= 0 ? 'half-open' : this.#state;
    return {
      state,
      consecutiveFailures: this.#failures,
      ...(state === 'open' && { retryAfterMs: Math.max(0, Math.round(left)) }),
      ...(this.#reason !== undefined && { reason: this.#reason }),
    };
  }

  #open(reason: string): void {
    this.#openedAt = this.#now();
    this.#reason = reason;
    this.#set('open', reason);
  }

  #set(state: BreakerState, reason: string): void {
    if (state === this.#state) return;
    this.#state = state;
    this.options.onChange?.(state, reason);
  }

  #refusal(leftMs: number): NucleusError {
    return unavailable(
      'circuit_open',
      `${this.options.label} is failing (${this.#reason ?? 'repeated failures'}); requests are refused for a cool-down, retry after ${Math.ceil(leftMs / 1000)} s`,
      Math.max(1, Math.ceil(leftMs / 1000)),
    );
  }
}
