import type { CostSummary, EventBus, StatsSnapshot } from '@nucleus/sdk';

/**
 * The `cost` and `tuning` sections of `/server/stats`, from the cost plugin's `cost.accrued` and the tuner's
 * `tuner.decision` events: cost since start by model and key, and each knob as last set. Absent until either reports.
 */
export class CostTuningView {
  #currency: string | undefined;
  #total = 0;
  readonly #byModel = new Map<string, CostSummary['byModel'][number]>();
  readonly #byKey = new Map<string, CostSummary['byKey'][number]>();
  readonly #knobs = new Map<string, NonNullable<StatsSnapshot['tuning']>[number]>();

  /** Subscribes; returns the function that unsubscribes. */
  attach(events: EventBus): () => void {
    const offs = [
      events.on('cost.accrued', (e) => {
        this.#currency = e.currency;
        this.#total += e.cost;
        const m = this.#byModel.get(e.model) ?? {
          model: e.model,
          requests: 0,
          cost: 0,
          cpuSeconds: 0,
          deviceSeconds: 0,
        };
        m.requests += e.requests;
        m.cost += e.cost;
        m.cpuSeconds += e.cpuSeconds;
        m.deviceSeconds += e.deviceSeconds;
        this.#byModel.set(e.model, m);
        const name = e.key ?? '(no key)';
        const k = this.#byKey.get(name) ?? { key: name, requests: 0, cost: 0 };
        k.requests += e.requests;
        k.cost += e.cost;
        this.#byKey.set(name, k);
      }),
      events.on('tuner.decision', ({ previous: _p, ...d }) =>
        this.#knobs.set(`${d.model}\u0000${d.knob}`, { ...d, at: new Date().toISOString() }),
      ),
    ];
    return () => offs.forEach((off) => off());
  }

  /** The sections to add to a snapshot (none before any event). */
  sections(): Pick<StatsSnapshot, 'cost' | 'tuning'> {
    return {
      ...(this.#currency !== undefined && {
        cost: {
          currency: this.#currency,
          total: this.#total,
          byModel: [...this.#byModel.values()].map((m) => ({ ...m })),
          byKey: [...this.#byKey.values()].map((k) => ({ ...k })),
        },
      }),
      ...(this.#knobs.size > 0 && { tuning: [...this.#knobs.values()] }),
    };
  }
}
