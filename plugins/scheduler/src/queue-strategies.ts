import type { Schedulable, SchedulerStrategy } from '@nucleus/sdk';

const RANK = { high: 2, normal: 1, low: 0 } as const;

/** First come, first served. */
export const fifo: SchedulerStrategy = {
  name: 'fifo',
  order: (waiting) =>
    waiting
      .map((w, i) => [w.enqueuedAt, i] as const)
      .sort((a, b) => a[0] - b[0] || a[1] - b[1])
      .map(([, i]) => i),
};

/**
 * High before normal before low, with aging: every `agingMs` of waiting lifts a request by one
 * class, so a low request is overtaken by fresh high ones for at most about 2 × agingMs.
 */
export function priorityWithAging(agingMs: number): SchedulerStrategy {
  const score = (w: Schedulable, now: number) => RANK[w.priority] + Math.max(0, now - w.enqueuedAt) / agingMs;
  return {
    name: 'priority',
    order: (waiting, now) =>
      waiting
        .map((w, i) => ({ i, s: score(w, now), t: w.enqueuedAt }))
        .sort((a, b) => b.s - a.s || a.t - b.t || a.i - b.i)
        .map((x) => x.i),
  };
}
