import type { RouteChoice, RoutedOutcome, ShadowOutcome } from '@nucleus/sdk';
import { CanaryController, type Rollback } from './canary-controller.js';
import { agreement } from './shadow-agreement.js';
import {
  CANARY_DEFAULTS,
  SHADOW_DEFAULT_PERCENT,
  type Target,
  type TrafficPolicy,
  targetLabel,
} from './traffic-policy.js';

/** What a variant plays in its policy. */
export type VariantRole = 'variant' | 'stable' | 'canary' | 'primary' | 'shadow';

/** One target of a policy and what it has answered since the policy was set. */
interface Variant {
  role: VariantRole;
  target: Target;
  label: string;
  /** weights: its share, 0 to 1. */
  share?: number;
  requests: number;
  /** Answered 5xx. */
  errors: number;
  /** Answered 4xx (the client's fault, not the version's). */
  clientErrors: number;
}

/** A shadow's comparisons since the policy was set. */
interface ShadowTally {
  copies: number;
  failed: number;
  /** Copies never run: too many were running already. */
  dropped: number;
  compared: number;
  /** Copies whose answers have no shape to compare (an embedding, a body of another form). */
  incomparable: number;
  agreementSum: number;
  kind?: 'argmax' | 'tokens';
}

/** One model name's policy at work: where each request goes, and what each variant has answered. */
export class ModelTraffic {
  readonly variants: Variant[];
  readonly canary: CanaryController | undefined;
  readonly #shadow: ShadowTally = {
    copies: 0,
    failed: 0,
    dropped: 0,
    compared: 0,
    incomparable: 0,
    agreementSum: 0,
  };
  readonly #since: string;

  constructor(
    readonly model: string,
    readonly policy: TrafficPolicy,
    now: number,
  ) {
    this.#since = new Date(now).toISOString();
    const variant = (role: VariantRole, target: Target, share?: number): Variant => ({
      role,
      target,
      label: targetLabel(model, target),
      ...(share !== undefined && { share }),
      requests: 0,
      errors: 0,
      clientErrors: 0,
    });
    switch (policy.type) {
      case 'weights': {
        const total = policy.variants.reduce((sum, v) => sum + v.weight, 0);
        this.variants = policy.variants.map(({ weight, ...t }) =>
          variant('variant', t, total > 0 ? weight / total : 0),
        );
        this.canary = undefined;
        break;
      }
      case 'canary':
        this.variants = [variant('stable', policy.stable), variant('canary', policy.canary)];
        this.canary = new CanaryController({ ...CANARY_DEFAULTS, ...definedOnly(policy) }, now);
        break;
      case 'shadow':
        this.variants = [variant('primary', policy.primary), variant('shadow', policy.shadow)];
        this.canary = undefined;
        break;
    }
  }

  /**
   * Where a request goes: `bucket` is where its user falls in [0, 1) (the same user, the same bucket), `draw` a fresh
   * random number in [0, 1) for the shadow's share.
   */
  choose(bucket: number, draw: number): RouteChoice | undefined {
    const p = this.policy;
    if (p.type === 'weights') {
      let edge = 0;
      for (const v of this.variants) {
        edge += v.share!;
        if (bucket < edge) return this.#choice(v.target);
      }
      // Rounding can leave the last sliver of [0, 1) past the last edge; an all-zero split routes nothing.
      const last = [...this.variants].reverse().find((v) => v.share! > 0);
      return last && this.#choice(last.target);
    }
    if (p.type === 'canary') return this.#choice(bucket * 100 < this.canary!.percent ? p.canary : p.stable);
    const copy = draw * 100 < (p.percent ?? SHADOW_DEFAULT_PERCENT);
    return {
      ...this.#choice(p.primary),
      ...(copy && { shadow: this.#choice(p.shadow) }),
    };
  }

  /** Counts an answer against its variant; a canary that this answer tips out of bounds is rolled back (returned). */
  observe(outcome: RoutedOutcome, now: number): Rollback | undefined {
    const v = this.variants.find((x) => x.role !== 'shadow' && this.#matches(x.target, outcome));
    if (!v) return undefined;
    v.requests++;
    if (outcome.status >= 500) v.errors++;
    else if (outcome.status >= 400) v.clientErrors++;
    // A client's mistake says nothing about the version.
    if (!this.canary || (outcome.status >= 400 && outcome.status < 500)) return undefined;
    const role = v.role === 'canary' ? 'canary' : 'stable';
    return this.canary.observe(role, now, outcome.status >= 500, outcome.durationMs);
  }

  /** Tallies a shadow copy's answer against the client's. */
  compare(outcome: ShadowOutcome): void {
    const t = this.#shadow;
    const v = this.variants.find((x) => x.role === 'shadow');
    // A copy that never ran says nothing about the shadow.
    if (outcome.shadow.dropped) {
      t.dropped++;
      return;
    }
    t.copies++;
    if (v) v.requests++;
    if (outcome.shadow.body === undefined) {
      t.failed++;
      if (v) v.errors++;
      return;
    }
    const a = agreement(outcome.primary.body, outcome.shadow.body);
    if (!a) {
      t.incomparable++;
      return;
    }
    t.compared++;
    t.agreementSum += a.value;
    t.kind = a.kind;
  }

  /** The policy's live state for `/status` and `GET /admin/traffic`. */
  status(now: number): Record<string, unknown> {
    const answered = this.variants.filter((v) => v.role !== 'shadow').reduce((sum, v) => sum + v.requests, 0);
    const variants = this.variants.map((v) => ({
      role: v.role,
      model: v.target.model ?? this.model,
      ...(v.target.version !== undefined && { version: v.target.version }),
      ...(v.share !== undefined && { weight: round(v.share) }),
      requests: v.requests,
      errors: v.errors,
      clientErrors: v.clientErrors,
      ...(v.role !== 'shadow' && { observedShare: answered > 0 ? round(v.requests / answered) : null }),
    }));
    const c = this.canary;
    const t = this.#shadow;
    return {
      type: this.policy.type,
      since: this.#since,
      requests: answered,
      variants,
      ...(c && {
        canary: {
          state: c.state,
          percent: c.percent,
          steps: c.steps,
          window: {
            ms: c.settings.windowMs,
            canary: windowFigures(c.canary, now),
            stable: windowFigures(c.stable, now),
          },
          ...(c.rollback && { rollback: c.rollback }),
        },
      }),
      ...(this.policy.type === 'shadow' && {
        shadow: {
          percent: this.policy.percent ?? SHADOW_DEFAULT_PERCENT,
          copies: t.copies,
          compared: t.compared,
          failed: t.failed,
          dropped: t.dropped,
          incomparable: t.incomparable,
          agreement: t.compared > 0 ? round(t.agreementSum / t.compared) : null,
          ...(t.kind && { agreementKind: t.kind }),
        },
      }),
    };
  }

  #choice(t: Target): RouteChoice {
    return { model: t.model ?? this.model, ...(t.version !== undefined && { version: t.version }) };
  }

  #matches(t: Target, o: { model: string; version?: string }): boolean {
    return (t.model ?? this.model) === o.model && t.version === o.version;
  }
}

function windowFigures(w: CanaryController['canary'], now: number) {
  const p99 = w.p99(now);
  return { requests: w.count(now), errorRate: round(w.errorRate(now)), p99Ms: p99 === undefined ? null : round(p99) };
}

function round(x: number): number {
  return Math.round(x * 10_000) / 10_000;
}

// The policy's own settings, without the keys it leaves out (so the defaults stay).
function definedOnly(p: object): Partial<typeof CANARY_DEFAULTS> {
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(CANARY_DEFAULTS)) {
    const value = (p as Record<string, unknown>)[key];
    if (value !== undefined) out[key] = value;
  }
  return out as Partial<typeof CANARY_DEFAULTS>;
}
