import type { AlertNotice, Logger } from '@nucleus/sdk';

/** An HTTP destination: a webhook or an Alertmanager. */
export interface HttpDestination {
  url: string;
  headers?: Record<string, string>;
}

/** Where notifications go and how many may go. */
export interface NotifierOptions {
  log: boolean;
  webhooks: HttpDestination[];
  alertmanagers: HttpDestination[];
  maxPerMinute: number;
  timeoutMs: number;
}

/** One alert changing state, to be sent. */
export interface Notification {
  status: 'firing' | 'resolved';
  alert: AlertNotice;
}

/** Least time between two warnings about dropped notifications. */
const WARN_EVERY_MS = 60_000;

/**
 * Sends alert notifications to the log, to webhooks (Alertmanager's webhook format) and to
 * Alertmanagers (`POST /api/v2/alerts`), at most `maxPerMinute` alerts a minute: the rest are dropped
 * and counted, with one warning a minute. Delivery is in the background and never throws.
 */
export class Notifier {
  private readonly sentAt: number[] = [];
  private readonly inFlight = new Set<Promise<void>>();
  private suppressedTotal = 0;
  private suppressedSinceWarn = 0;
  private lastWarn = 0;

  constructor(
    private readonly options: NotifierOptions,
    private readonly logger: Logger,
  ) {}

  /** Notifications dropped by the rate limit since start. */
  get suppressed(): number {
    return this.suppressedTotal;
  }

  /** Sends one evaluation's state changes, as one request per destination. */
  send(batch: readonly Notification[], now = Date.now()): void {
    while (this.sentAt.length && this.sentAt[0]! <= now - 60_000) this.sentAt.shift();
    const room = Math.max(0, this.options.maxPerMinute - this.sentAt.length);
    const allowed = batch.slice(0, room);
    const dropped = batch.length - allowed.length;
    if (dropped > 0) this.dropped(dropped, now);
    if (!allowed.length) return;
    for (let i = 0; i < allowed.length; i++) this.sentAt.push(now);

    if (this.options.log) {
      for (const n of allowed) {
        const fields = {
          alert: n.alert.name,
          severity: n.alert.severity,
          value: n.alert.value,
          threshold: n.alert.threshold,
          labels: n.alert.labels,
        };
        if (n.status === 'firing') this.logger.warn(fields, `alert firing: ${n.alert.summary}`);
        else this.logger.info(fields, `alert resolved: ${n.alert.name}`);
      }
    }
    for (const d of this.options.webhooks) this.post(d, d.url, webhookBody(allowed));
    for (const d of this.options.alertmanagers) this.post(d, alertmanagerUrl(d.url), allowed.map(postableAlert));
  }

  /** Waits for deliveries in flight. */
  async flush(): Promise<void> {
    await Promise.all([...this.inFlight]);
  }

  private post(destination: HttpDestination, url: string, body: unknown): void {
    const delivery = fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...destination.headers },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(this.options.timeoutMs),
    })
      .then(async (res) => {
        if (!res.ok)
          this.logger.warn(
            { url, status: res.status, body: (await res.text()).slice(0, 200) },
            'alert destination refused the notification',
          );
        else await res.arrayBuffer();
      })
      .catch((err: unknown) => this.logger.warn({ url, err }, 'alert notification could not be delivered'))
      .finally(() => this.inFlight.delete(delivery));
    this.inFlight.add(delivery);
  }

  private dropped(count: number, now: number): void {
    this.suppressedTotal += count;
    this.suppressedSinceWarn += count;
    if (now - this.lastWarn < WARN_EVERY_MS) return;
    this.logger.warn(
      { suppressed: this.suppressedSinceWarn, maxPerMinute: this.options.maxPerMinute },
      'alert notifications over the rate limit were dropped',
    );
    this.lastWarn = now;
    this.suppressedSinceWarn = 0;
  }
}

/** Alertmanager's labels for an alert: alertname, severity and the rule's own. */
export function alertLabels(alert: AlertNotice): Record<string, string> {
  return { alertname: alert.name, severity: alert.severity, ...alert.labels };
}

/** The body Alertmanager sends to its webhook receivers (version 4), so receivers written for it read ours. */
export function webhookBody(batch: readonly Notification[]): Record<string, unknown> {
  const alerts = batch.map((n) => ({
    status: n.status,
    labels: alertLabels(n.alert),
    annotations: { summary: n.alert.summary, value: String(n.alert.value), threshold: String(n.alert.threshold) },
    startsAt: n.alert.startsAt,
    endsAt: n.alert.endsAt ?? '0001-01-01T00:00:00Z',
    generatorURL: '',
    fingerprint: fingerprint(alertLabels(n.alert)),
  }));
  const common = (pick: (a: (typeof alerts)[number]) => Record<string, string>) => {
    const first = alerts[0] ? pick(alerts[0]) : {};
    return Object.fromEntries(Object.entries(first).filter(([k, v]) => alerts.every((a) => pick(a)[k] === v)));
  };
  return {
    version: '4',
    groupKey: `{}:{alertname=~"${[...new Set(alerts.map((a) => a.labels.alertname))].join('|')}"}`,
    truncatedAlerts: 0,
    status: batch.some((n) => n.status === 'firing') ? 'firing' : 'resolved',
    receiver: 'nucleus',
    groupLabels: {},
    commonLabels: common((a) => a.labels),
    commonAnnotations: common((a) => a.annotations),
    externalURL: '',
    alerts,
  };
}

/** One alert as Alertmanager's `POST /api/v2/alerts` takes it; a resolved one carries its end time. */
export function postableAlert(n: Notification): Record<string, unknown> {
  return {
    labels: alertLabels(n.alert),
    annotations: { summary: n.alert.summary },
    startsAt: n.alert.startsAt,
    ...(n.status === 'resolved' && n.alert.endsAt ? { endsAt: n.alert.endsAt } : {}),
  };
}

function alertmanagerUrl(base: string): string {
  return /\/api\/v2\/alerts\/?$/.test(base) ? base : `${base.replace(/\/+$/, '')}/api/v2/alerts`;
}

/** A stable id of a label set (FNV-1a over the sorted labels), like Alertmanager's fingerprint. */
function fingerprint(labels: Record<string, string>): string {
  let h = 0xcbf29ce484222325n;
  for (const [k, v] of Object.entries(labels).sort(([a], [b]) => a.localeCompare(b))) {
    for (const byte of Buffer.from(`${k}\u00ff${v}\u00ff`)) {
      h ^= BigInt(byte);
      h = (h * 0x100000001b3n) & 0xffffffffffffffffn;
    }
  }
  return h.toString(16).padStart(16, '0');
}
