import type { CostAccrual } from '@nucleus/sdk';

/** Prices, per hour of each resource, in one currency. */
export interface Prices {
  cpuCoreHour: number;
  gpuHour: number;
  memoryGbHour: number;
  currency: string;
}

/** One finished request, as the meter weighs it. */
export interface Work {
  model: string;
  key?: string;
  /** Its share of worker time: its batch's run time over the batch's requests, or its generation steps' share. */
  workerMs: number;
  /** Its share of accelerator time; 0 on a CPU backend. */
  deviceMs: number;
}

/** What the process used since the previous reading: CPU (all threads) and resident memory now. */
export interface UsageReading {
  /** Cumulative user plus system CPU time of the process, in microseconds (`process.cpuUsage()`). */
  cpuMicros: number;
  rssBytes: number;
  /** A monotonic clock, in ms. */
  atMs: number;
}

/** Resource use nobody's request was charged for (intervals in which no request finished). */
export interface Unattributed {
  cpuSeconds: number;
  memoryGbSeconds: number;
  cost: number;
}

const GB = 1024 ** 3;

/**
 * Turns measured resource use into a cost per request. Node 20 has no per-thread CPU clock, but the process's clock
 * (`process.cpuUsage()`) counts every thread, the inference workers' included; so each settlement reads how much CPU
 * the process used since the previous one and splits it over the requests that finished in between, in proportion
 * to the worker time each took. Memory is the resident set times the interval, split the same way. Accelerator time
 * is each request's own worker time on a GPU backend. The sum of what is charged equals what the process used, less
 * what it used in intervals without a finished request (reported as unattributed).
 */
export class CostMeter {
  #pending: Work[] = [];
  #last: UsageReading;
  readonly unattributed: Unattributed = { cpuSeconds: 0, memoryGbSeconds: 0, cost: 0 };

  constructor(
    readonly prices: Prices,
    private readonly read: () => UsageReading,
  ) {
    this.#last = read();
  }

  /** Notes a finished request; it is charged at the next {@link settle}. */
  record(work: Work): void {
    this.#pending.push(work);
  }

  /** Splits what the process used since the previous settlement over the requests recorded since; one accrual per model and key. */
  settle(): CostAccrual[] {
    const now = this.read();
    const cpuSeconds = Math.max(0, now.cpuMicros - this.#last.cpuMicros) / 1e6;
    const memoryGbSeconds = (now.rssBytes / GB) * (Math.max(0, now.atMs - this.#last.atMs) / 1000);
    this.#last = now;
    const work = this.#pending;
    this.#pending = [];
    const { cpuCoreHour, gpuHour, memoryGbHour, currency } = this.prices;
    if (work.length === 0) {
      this.unattributed.cpuSeconds += cpuSeconds;
      this.unattributed.memoryGbSeconds += memoryGbSeconds;
      this.unattributed.cost += (cpuSeconds * cpuCoreHour + memoryGbSeconds * memoryGbHour) / 3600;
      return [];
    }
    const totalMs = work.reduce((sum, w) => sum + w.workerMs, 0);
    // Requests that took no measurable worker time (all answered from a cache, say) share equally.
    const share = (w: Work): number => (totalMs > 0 ? w.workerMs / totalMs : 1 / work.length);
    const byPair = new Map<string, CostAccrual>();
    for (const w of work) {
      const id = `${w.model}\u0000${w.key ?? ''}`;
      let a = byPair.get(id);
      if (!a) {
        a = {
          model: w.model,
          ...(w.key !== undefined && { key: w.key }),
          requests: 0,
          cpuSeconds: 0,
          deviceSeconds: 0,
          memoryGbSeconds: 0,
          cost: 0,
          currency,
        };
        byPair.set(id, a);
      }
      const s = share(w);
      a.requests++;
      a.cpuSeconds += cpuSeconds * s;
      a.memoryGbSeconds += memoryGbSeconds * s;
      a.deviceSeconds += w.deviceMs / 1000;
    }
    for (const a of byPair.values())
      a.cost = (a.cpuSeconds * cpuCoreHour + a.deviceSeconds * gpuHour + a.memoryGbSeconds * memoryGbHour) / 3600;
    return [...byPair.values()];
  }
}
