import type { CostAccrual } from '@nucleus/sdk';

interface Totals {
  requests: number;
  cost: number;
  cpuSeconds: number;
  deviceSeconds: number;
  memoryGbSeconds: number;
}

const zero = (): Totals => ({ requests: 0, cost: 0, cpuSeconds: 0, deviceSeconds: 0, memoryGbSeconds: 0 });

function add(to: Totals, a: CostAccrual): void {
  to.requests += a.requests;
  to.cost += a.cost;
  to.cpuSeconds += a.cpuSeconds;
  to.deviceSeconds += a.deviceSeconds;
  to.memoryGbSeconds += a.memoryGbSeconds;
}

/** Cost since the server started, by model, by key, and by the two together. */
export class CostLedger {
  readonly #byModel = new Map<string, Totals>();
  readonly #byKey = new Map<string, Totals>();
  readonly #byPair = new Map<string, Totals & { model: string; key?: string }>();
  readonly #total = zero();

  constructor(readonly currency: string) {}

  add(accruals: readonly CostAccrual[]): void {
    for (const a of accruals) {
      add(this.#total, a);
      add(this.#entry(this.#byModel, a.model), a);
      // Requests without a key are totalled under the empty name: `/server/cost` shows them as "(no key)".
      add(this.#entry(this.#byKey, a.key ?? ''), a);
      const id = `${a.model}\u0000${a.key ?? ''}`;
      let pair = this.#byPair.get(id);
      if (!pair) {
        pair = { model: a.model, ...(a.key !== undefined && { key: a.key }), ...zero() };
        this.#byPair.set(id, pair);
      }
      add(pair, a);
    }
  }

  /** Totals for `/server/cost`: overall, by model, by key and by model and key. */
  report() {
    const rows = <T>(m: Map<string, Totals>, name: (k: string) => T) =>
      [...m].sort(([a], [b]) => a.localeCompare(b)).map(([k, t]) => ({ ...name(k), ...t }));
    return {
      currency: this.currency,
      total: { ...this.#total },
      byModel: rows(this.#byModel, (model) => ({ model })),
      byKey: rows(this.#byKey, (key) => ({ key: key === '' ? '(no key)' : key })),
      byModelAndKey: [...this.#byPair.values()].map((p) => ({ ...p })),
    };
  }

  #entry(m: Map<string, Totals>, k: string): Totals {
    let t = m.get(k);
    if (!t) {
      t = zero();
      m.set(k, t);
    }
    return t;
  }
}
