import { definePlugin, ExtensionPoints } from '@nucleus/sdk';
import { type Budget, BudgetWatch } from './budget-watch.js';
import { CostLedger } from './cost-ledger.js';
import { CostMeter, type Prices } from './cost-meter.js';
import { WorkTracker } from './work-tracker.js';

export { type Budget, type BudgetStatus, BudgetWatch } from './budget-watch.js';
export { CostLedger } from './cost-ledger.js';
export { CostMeter, type Prices, type Unattributed, type UsageReading, type Work } from './cost-meter.js';
export { WorkTracker } from './work-tracker.js';

/** The cost plugin's config section (`plugin.cost`), as its schema in package.json defines it. */
export interface CostConfig {
  prices: Omit<Prices, 'currency'>;
  currency: string;
  settleIntervalMs: number;
  budgets: Budget[];
}

/**
 * The cost of each inference from measured CPU, accelerator and memory use at configured prices: per model and per
 * API key on `GET /server/cost`, as `cost.accrued` events (which the metrics and stats plugins show), and budgets that
 * raise alerts through the alerts plugin.
 */
export default definePlugin<CostConfig>({
  activate(ctx) {
    const config = ctx.config;
    const names = new Set<string>();
    for (const b of config.budgets) {
      if (names.has(b.name))
        throw new Error(`plugin.cost.budgets: two budgets are named "${b.name}"; give each a distinct name`);
      names.add(b.name);
    }
    const meter = new CostMeter({ ...config.prices, currency: config.currency }, () => {
      const cpu = process.cpuUsage();
      return { cpuMicros: cpu.user + cpu.system, rssBytes: process.memoryUsage.rss(), atMs: performance.now() };
    });
    const ledger = new CostLedger(config.currency);
    const budgets = new BudgetWatch(config.budgets, ctx.events, config.currency);
    const tracker = new WorkTracker((work) => meter.record(work));
    const settle = (): void => {
      const accruals = meter.settle();
      if (accruals.length === 0) return;
      ledger.add(accruals);
      for (const a of accruals) ctx.events.emit('cost.accrued', a);
      budgets.add(accruals);
    };
    const detach = tracker.attach(ctx.events);
    const timer = setInterval(() => {
      try {
        settle();
      } catch (err) {
        ctx.logger.warn({ err }, 'settling inference costs failed');
      }
    }, config.settleIntervalMs).unref();
    ctx.onDispose(() => {
      clearInterval(timer);
      detach();
      settle();
    });

    ctx.contribute(
      ExtensionPoints.routes,
      {
        method: 'GET',
        path: '/server/cost',
        handler: () => {
          // Requests answered since the last tick are charged now, so the answer includes them.
          settle();
          return {
            ...ledger.report(),
            prices: config.prices,
            unattributed: { ...meter.unattributed },
            budgets: budgets.status(),
            method:
              "process CPU time (all threads) and resident memory per settlement interval, split over the requests finished in it by their worker time; accelerator time is a request's own worker time on a GPU backend",
          };
        },
      },
      { name: 'cost' },
    );
  },
});
