import { definePlugin, ExtensionPoints } from '@nucleus/sdk';
import { AlertEngine, type AlertRule } from './alert-engine.js';
import { Notifier, type HttpDestination } from './notifier.js';
import { SignalWindows } from './signal-windows.js';

export { AlertEngine, type AlertEngineOptions, type AlertRule, type RuleStatus } from './alert-engine.js';
export { Notifier, postableAlert, webhookBody, type Notification, type NotifierOptions } from './notifier.js';
export { SignalWindows, type AlertMetric, type Measurement, type SignalScope } from './signal-windows.js';

/** The alerts plugin's config section (`plugin.alerts`), as its schema in package.json defines it. */
export interface AlertsConfig {
  rules: AlertRule[];
  evaluateIntervalMs: number;
  log: boolean;
  webhooks: HttpDestination[];
  alertmanagers: HttpDestination[];
  labels: Record<string, string>;
  repeatIntervalS: number;
  cooldownS: number;
  maxNotificationsPerMinute: number;
  sendResolved: boolean;
  timeoutMs: number;
}

/** Alert rules evaluated over event-fed sliding windows, sent to the log, webhooks and Alertmanagers; `GET /server/alerts` shows them. */
export default definePlugin<AlertsConfig>({
  activate(ctx) {
    const config = ctx.config;
    // The schema's defaults are already applied to each rule.
    const rules = config.rules;
    const names = new Set<string>();
    for (const r of rules) {
      if (names.has(r.name))
        throw new Error(`plugin.alerts.rules: two rules are named "${r.name}"; give each a distinct name`);
      names.add(r.name);
    }
    const signals = new SignalWindows(Math.max(60, ...rules.map((r) => r.windowS)));
    const notifier = new Notifier(
      {
        log: config.log,
        webhooks: config.webhooks,
        alertmanagers: config.alertmanagers,
        maxPerMinute: config.maxNotificationsPerMinute,
        timeoutMs: config.timeoutMs,
      },
      ctx.logger,
    );
    const engine = new AlertEngine(rules, signals, notifier, ctx.events, {
      labels: config.labels,
      repeatIntervalS: config.repeatIntervalS,
      cooldownS: config.cooldownS,
      sendResolved: config.sendResolved,
    });
    const detach = signals.attach(ctx.events);
    // Alerts other plugins raise on the bus (a canary rolled back) go out the same way as the rules' own.
    const offForeign = ctx.events.on('alert.fired', (alert) => {
      if (!names.has(alert.name)) notifier.send([{ status: 'firing', alert }]);
    });
    const timer = setInterval(() => {
      try {
        engine.evaluate();
      } catch (err) {
        ctx.logger.warn({ err }, 'evaluating alert rules failed');
      }
    }, config.evaluateIntervalMs).unref();
    ctx.onDispose(async () => {
      clearInterval(timer);
      detach();
      offForeign();
      await notifier.flush();
    });

    ctx.contribute(ExtensionPoints.exporter, { name: 'alerts', flush: () => notifier.flush() });
    ctx.contribute(ExtensionPoints.wsTopics, {
      name: 'alerts',
      events: ['alert.fired', 'alert.resolved'],
      description: 'alerts as they fire and resolve',
    });
    ctx.contribute(
      ExtensionPoints.routes,
      {
        method: 'GET',
        path: '/server/alerts',
        handler: () => ({
          rules: engine.status(),
          firing: engine.firing(),
          suppressedNotifications: notifier.suppressed,
        }),
      },
      { name: 'alerts' },
    );
  },
});
