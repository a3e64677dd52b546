import type { AlertNotice, CostAccrual, EventBus } from '@nucleus/sdk';

/** A spending limit over a calendar day or month (UTC), for one key, one model, one key on one model, or everything. */
export interface Budget {
  name: string;
  key?: string;
  model?: string;
  period: 'day' | 'month';
  amount: number;
  severity: 'info' | 'warning' | 'critical';
}

/** A budget and what was spent against it in the current period. */
export interface BudgetStatus {
  name: string;
  key?: string;
  model?: string;
  period: 'day' | 'month';
  /** The current period: `2024-05-17` or `2024-05`. */
  periodStart: string;
  amount: number;
  spent: number;
  firing: boolean;
}

interface Tracked {
  budget: Budget;
  period: string;
  spent: number;
  firing?: AlertNotice;
}

function periodOf(period: Budget['period'], at: Date): string {
  const iso = at.toISOString();
  return period === 'day' ? iso.slice(0, 10) : iso.slice(0, 7);
}

/**
 * Adds accrued costs to the budgets they fall under and raises an alert on the bus (`alert.fired`) when a budget's
 * spending passes its amount, once per period; the alerts plugin sends it on to the log, webhooks and Alertmanagers.
 * A new period starts from zero and resolves the alert. Spending is kept in memory: a restart starts the period over.
 */
export class BudgetWatch {
  readonly #tracked: Tracked[];

  constructor(
    budgets: readonly Budget[],
    private readonly events: Pick<EventBus, 'emit'>,
    private readonly currency: string,
    private readonly now: () => Date = () => new Date(),
  ) {
    const at = now();
    this.#tracked = budgets.map((budget) => ({ budget, period: periodOf(budget.period, at), spent: 0 }));
  }

  /** Charges an accrual to every budget it falls under, then fires or resolves alerts. */
  add(accruals: readonly CostAccrual[]): void {
    const at = this.now();
    for (const t of this.#tracked) {
      this.#roll(t, at);
      const { key, model } = t.budget;
      for (const a of accruals)
        if ((key === undefined || a.key === key) && (model === undefined || a.model === model)) t.spent += a.cost;
      if (t.firing === undefined && t.spent > t.budget.amount) {
        t.firing = this.#notice(t, at);
        this.events.emit('alert.fired', t.firing);
      }
    }
  }

  /** Every budget with its spending in the current period. */
  status(): BudgetStatus[] {
    const at = this.now();
    return this.#tracked.map((t) => {
      this.#roll(t, at);
      const { name, key, model, period, amount } = t.budget;
      return {
        name,
        ...(key !== undefined && { key }),
        ...(model !== undefined && { model }),
        period,
        periodStart: t.period,
        amount,
        spent: t.spent,
        firing: t.firing !== undefined,
      };
    });
  }

  #roll(t: Tracked, at: Date): void {
    const period = periodOf(t.budget.period, at);
    if (period === t.period) return;
    t.period = period;
    t.spent = 0;
    if (t.firing) {
      this.events.emit('alert.resolved', { ...t.firing, endsAt: at.toISOString() });
      t.firing = undefined;
    }
  }

  #notice(t: Tracked, at: Date): AlertNotice {
    const { name, key, model, period, amount, severity } = t.budget;
    const whose = [key !== undefined && `key "${key}"`, model !== undefined && `model "${model}"`]
      .filter(Boolean)
      .join(' on ');
    return {
      name,
      severity,
      summary: `${whose || 'all requests'} spent ${t.spent.toFixed(6)} ${this.currency} this ${period} (${t.period}), over the budget of ${amount} ${this.currency}`,
      value: t.spent,
      threshold: amount,
      labels: {
        alertname: name,
        severity,
        period,
        ...(key !== undefined && { key }),
        ...(model !== undefined && { model }),
      },
      startsAt: at.toISOString(),
    };
  }
}
