import type { AlertNotice, EventBus } from '@nucleus/sdk';
import type { Notification, Notifier } from './notifier.js';
import type { AlertMetric, SignalWindows } from './signal-windows.js';

/** One rule from `plugin.alerts.rules`, defaults applied. */
export interface AlertRule {
  name: string;
  metric: AlertMetric;
  op: '>' | '<';
  threshold: number;
  windowS: number;
  forS: number;
  minSamples: number;
  model?: string;
  endpoint?: string;
  severity: AlertNotice['severity'];
  summary?: string;
}

/** How the engine paces notifications. */
export interface AlertEngineOptions {
  /** Labels added to every alert. */
  labels: Record<string, string>;
  repeatIntervalS: number;
  cooldownS: number;
  sendResolved: boolean;
}

/** Where a rule stands, as `GET /server/alerts` shows it. */
export interface RuleStatus {
  name: string;
  metric: AlertMetric;
  op: '>' | '<';
  threshold: number;
  windowS: number;
  /** `no_data`: too few samples in the window to judge. */
  state: 'ok' | 'pending' | 'firing' | 'no_data';
  value: number | null;
  samples: number;
  /** ISO time the current state began (pending or firing). */
  since?: string;
}

interface RuleState {
  rule: AlertRule;
  state: RuleStatus['state'];
  value: number | null;
  samples: number;
  pendingSince?: number;
  firing?: AlertNotice;
  lastNotified: number;
  lastResolved: number;
}

const UNITS: Record<AlertMetric, string> = {
  latency_p50: 'ms',
  latency_p95: 'ms',
  latency_p99: 'ms',
  ttft_p95: 'ms',
  error_rate: '',
  request_rate: '/s',
  inference_rate: '/s',
  token_rate: ' tokens/s',
  rss_bytes: ' bytes',
  heap_used_bytes: ' bytes',
  queue_depth: ' queued',
  drift_psi: '',
  drift_ks: '',
  prediction_drift_psi: '',
};

/**
 * Evaluates alert rules over sliding windows: a rule whose condition holds for `forS` fires, is
 * repeated every `repeatIntervalS` while it holds, and resolves when it stops holding; a resolved rule
 * may fire again only after `cooldownS`. State changes go on the bus (`alert.fired`, `alert.resolved`)
 * and to the notifier.
 */
export class AlertEngine {
  private readonly states: RuleState[];

  constructor(
    rules: readonly AlertRule[],
    private readonly signals: SignalWindows,
    private readonly notifier: Notifier,
    private readonly events: EventBus,
    private readonly options: AlertEngineOptions,
  ) {
    this.states = rules.map((rule) => ({
      rule,
      state: 'no_data',
      value: null,
      samples: 0,
      lastNotified: 0,
      lastResolved: -Infinity,
    }));
  }

  /** Evaluates every rule once and sends what changed. */
  evaluate(now = Date.now()): void {
    const batch: Notification[] = [];
    for (const s of this.states) {
      const { rule } = s;
      const m = this.signals.measure(
        {
          metric: rule.metric,
          windowS: rule.windowS,
          ...(rule.model ? { model: rule.model } : {}),
          ...(rule.endpoint ? { endpoint: rule.endpoint } : {}),
        },
        now,
      );
      const judged = m !== undefined && m.samples >= rule.minSamples;
      s.value = m && m.samples > 0 ? round(m.value) : null;
      s.samples = m ? (Number.isFinite(m.samples) ? m.samples : 1) : 0;
      const breach = judged && (rule.op === '>' ? m.value > rule.threshold : m.value < rule.threshold);
      if (breach) {
        if (s.state !== 'pending' && s.state !== 'firing') {
          s.state = 'pending';
          s.pendingSince = now;
        }
        if (
          s.state === 'pending' &&
          now - s.pendingSince! >= rule.forS * 1000 &&
          now - s.lastResolved >= this.options.cooldownS * 1000
        ) {
          s.state = 'firing';
          s.firing = this.notice(rule, m.value, now);
          s.lastNotified = now;
          this.events.emit('alert.fired', s.firing);
          batch.push({ status: 'firing', alert: s.firing });
        } else if (s.state === 'firing' && now - s.lastNotified >= this.options.repeatIntervalS * 1000) {
          s.firing = { ...s.firing!, value: round(m.value) };
          s.lastNotified = now;
          batch.push({ status: 'firing', alert: s.firing });
        }
        continue;
      }
      if (s.state === 'firing') {
        const resolved: AlertNotice = {
          ...s.firing!,
          endsAt: new Date(now).toISOString(),
          ...(s.value === null ? {} : { value: s.value }),
        };
        s.lastResolved = now;
        this.events.emit('alert.resolved', resolved);
        if (this.options.sendResolved) batch.push({ status: 'resolved', alert: resolved });
      }
      s.firing = undefined;
      s.pendingSince = undefined;
      s.state = judged ? 'ok' : 'no_data';
    }
    if (batch.length) this.notifier.send(batch, now);
  }

  /** Every rule and where it stands. */
  status(): RuleStatus[] {
    return this.states.map((s) => ({
      name: s.rule.name,
      metric: s.rule.metric,
      op: s.rule.op,
      threshold: s.rule.threshold,
      windowS: s.rule.windowS,
      state: s.state,
      value: s.value,
      samples: s.samples,
      ...(s.state === 'firing' && s.firing
        ? { since: s.firing.startsAt }
        : s.state === 'pending' && s.pendingSince
          ? { since: new Date(s.pendingSince).toISOString() }
          : {}),
    }));
  }

  /** The alerts firing now. */
  firing(): AlertNotice[] {
    return this.states.flatMap((s) => (s.state === 'firing' && s.firing ? [s.firing] : []));
  }

  private notice(rule: AlertRule, value: number, now: number): AlertNotice {
    const scope = rule.model ? ` for model ${rule.model}` : rule.endpoint ? ` on ${rule.endpoint}` : '';
    const unit = UNITS[rule.metric];
    return {
      name: rule.name,
      severity: rule.severity,
      summary:
        rule.summary ??
        `${rule.metric}${scope} is ${round(value)}${unit} over the last ${rule.windowS}s (threshold ${rule.op} ${rule.threshold}${unit})`,
      value: round(value),
      threshold: rule.threshold,
      labels: {
        ...this.options.labels,
        metric: rule.metric,
        ...(rule.model ? { model: rule.model } : {}),
        ...(rule.endpoint ? { endpoint: rule.endpoint } : {}),
      },
      startsAt: new Date(now).toISOString(),
    };
  }
}

function round(n: number): number {
  return Math.round(n * 1000) / 1000;
}
