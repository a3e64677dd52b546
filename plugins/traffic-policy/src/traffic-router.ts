import type {
  EventBus,
  Logger,
  ModelRouter,
  RouteChoice,
  RoutedOutcome,
  RouteRequest,
  ShadowOutcome,
} from '@nucleus/sdk';
import type { Rollback } from './canary-controller.js';
import { ModelTraffic } from './model-traffic.js';
import { stickyBucket } from './sticky-bucket.js';
import { targetLabel, type TrafficPolicy } from './traffic-policy.js';

/** What a {@link TrafficRouter} needs. */
export interface TrafficRouterOptions {
  /** The header whose value keeps a user on one variant. */
  stickyHeader: string;
  events: EventBus;
  logger: Logger;
  /** The clock and the dice; tests may fix them. */
  now?: () => number;
  random?: () => number;
}

/** How often a canary is looked at for its next step, at most. */
const TICK_MS = 1000;

/**
 * The `router` contribution: each model name with a policy has its requests split between its versions (or other
 * models) by that policy; other names, and requests that name their version themselves, are left to the next router.
 */
export class TrafficRouter implements ModelRouter {
  readonly name = 'traffic-policy';
  readonly #models = new Map<string, ModelTraffic>();
  readonly #timers = new Map<string, NodeJS.Timeout>();
  readonly #now: () => number;
  readonly #random: () => number;

  constructor(private readonly options: TrafficRouterOptions) {
    this.#now = options.now ?? Date.now;
    this.#random = options.random ?? Math.random;
  }

  /** Sets (or replaces, starting its counts and any canary afresh) the policy of `model`. */
  set(model: string, policy: TrafficPolicy): void {
    this.delete(model);
    const traffic = new ModelTraffic(model, policy, this.#now());
    this.#models.set(model, traffic);
    const canary = traffic.canary;
    if (canary) {
      const every = Math.min(TICK_MS, canary.settings.stepIntervalMs);
      const timer = setInterval(() => {
        const from = canary.percent;
        if (canary.tick(this.#now()))
          this.options.logger.info(
            { model, canary: targetLabel(model, (policy as { canary: object }).canary), from, to: canary.percent },
            canary.state === 'promoted' ? 'canary promoted to 100 %' : 'canary stepped up',
          );
        if (canary.state !== 'stepping') this.#stopTimer(model);
      }, every).unref();
      this.#timers.set(model, timer);
    }
    this.options.logger.info({ model, policy: policy.type }, 'traffic policy set');
  }

  /** Removes the policy of `model`; false when it had none. */
  delete(model: string): boolean {
    this.#stopTimer(model);
    return this.#models.delete(model);
  }

  /** The policies in force, by model name. */
  policies(): Record<string, TrafficPolicy> {
    return Object.fromEntries([...this.#models].map(([m, t]) => [m, t.policy]));
  }

  has(model: string): boolean {
    return this.#models.has(model);
  }

  route(request: RouteRequest): RouteChoice | undefined {
    const traffic = this.#models.get(request.model);
    // A request that names its version is served by that version, whatever the policy.
    if (!traffic || request.version !== undefined) return undefined;
    const key = this.#key(request);
    const bucket = key === undefined ? this.#random() : stickyBucket(request.model, key);
    return traffic.choose(bucket, this.#random());
  }

  observe(outcome: RoutedOutcome): void {
    const traffic = this.#models.get(outcome.addressed);
    const rollback = traffic?.observe(outcome, this.#now());
    if (traffic && rollback) this.#rolledBack(traffic, rollback);
  }

  compareShadow(outcome: ShadowOutcome): void {
    this.#models.get(outcome.addressed)?.compare(outcome);
  }

  /** For `/status`: the policies' state, or undefined while there is none. */
  status(): Record<string, unknown> | undefined {
    return this.#models.size > 0 ? this.snapshot() : undefined;
  }

  /** Every policy's live state (none: an empty `models`). */
  snapshot(): Record<string, unknown> {
    const now = this.#now();
    return {
      stickyHeader: this.options.stickyHeader,
      models: Object.fromEntries([...this.#models].map(([m, t]) => [m, t.status(now)])),
    };
  }

  /** One model's policy state; undefined when it has none. */
  modelStatus(model: string): Record<string, unknown> | undefined {
    return this.#models.get(model)?.status(this.#now());
  }

  /** Stops every canary's clock. */
  stop(): void {
    for (const model of [...this.#timers.keys()]) this.#stopTimer(model);
  }

  // The header first (an API gateway sets it for every API), then an OpenAI request's `user`.
  #key(request: RouteRequest): string | undefined {
    const header = request.headers[this.options.stickyHeader.toLowerCase()];
    const value = Array.isArray(header) ? header[0] : header;
    if (value) return value;
    const user = request.body?.user;
    return typeof user === 'string' && user !== '' ? user : undefined;
  }

  #rolledBack(traffic: ModelTraffic, rollback: Rollback): void {
    const { model } = traffic;
    this.#stopTimer(model);
    const policy = traffic.policy as { canary: object; stable: object };
    const canary = targetLabel(model, policy.canary);
    const stable = targetLabel(model, policy.stable);
    const summary = `canary ${canary} of model '${model}' rolled back to 0 %: ${rollback.summary}; ${stable} serves every request`;
    this.options.logger.warn({ model, canary, stable, reason: rollback.reason }, summary);
    this.options.events.emit('alert.fired', {
      name: 'CanaryRolledBack',
      severity: 'critical',
      summary,
      value: rollback.value,
      threshold: rollback.threshold,
      labels: { model, canary, stable, reason: rollback.reason },
      startsAt: new Date(this.#now()).toISOString(),
    });
  }

  #stopTimer(model: string): void {
    const timer = this.#timers.get(model);
    if (timer) clearInterval(timer);
    this.#timers.delete(model);
  }
}
