import type { EventBus } from '@nucleus/sdk';
import type { PrefixCacheStats } from '../prefix-cache/prefix-cache.js';
import type { GenerationReplicas } from './generation-replicas.js';
import type { GenerationWorkerClientObserver } from './generation-worker-client.js';
import type { StepRecovery } from './generation-loop.js';
import { speedupFactor, type SpeculationStats } from './speculative-step.js';
import { ReplicaCounters } from './replica-counters.js';

const RECOVERY_COUNTERS = ['cacheFlushes', 'splits', 'failedAlone'] as const satisfies readonly (keyof StepRecovery)[];

/**
 * One model's totals over its replicas, from what each replica's worker reports with its token groups: prefix-cache
 * counters, speculation and step recovery. A replica's worker counts from zero again when it restarts and a retired
 * replica's counts stay, so the model's totals never go down. Each report becomes `engine.stats`, `engine.steps`,
 * `cache.stats` and `spec.acceptance` events.
 */
export class ReplicaTelemetry {
  /** Each replica's prefix cache as it last reported, by replica id. */
  readonly #cacheStats = new Map<number, PrefixCacheStats>();
  /** Counters of replica caches that are gone (retired, or restarted empty). */
  readonly #cacheBase = { hits: 0, misses: 0, evictions: 0 };
  /** How the replicas got through steps that failed (allocation failures). */
  readonly #recovery = new ReplicaCounters(RECOVERY_COUNTERS);
  /** Each replica's KV cache use as it last reported, by replica id. */
  readonly #kvUsage = new Map<number, number>();
  /** Speculation totals last reported per replica, so events carry what changed. */
  readonly #specTotals = new Map<number, SpeculationStats>();

  /** `replicas`: the model's replicas now; `method`: its speculative method's name, for events. */
  constructor(
    private readonly model: string,
    private readonly events: EventBus,
    private readonly replicas: () => GenerationReplicas | undefined,
    private readonly method: () => string,
  ) {}

  /** What the worker of replica `id` reports goes into the totals and out as events. */
  observer(id: number): GenerationWorkerClientObserver {
    const model = this.model;
    return {
      onGroup: ({ steps, cache, speculation, recovery, incarnation, kvUsage }) => {
        this.#kvUsage.set(id, kvUsage);
        if (speculation) this.#speculation(id, speculation);
        if (recovery) this.#recovery.report(id, incarnation, recovery);
        const replicas = this.replicas();
        const stepRecovery = this.recoveryTotals();
        this.events.emit('engine.stats', {
          model,
          running: replicas?.running ?? 0,
          waiting: replicas?.waiting ?? 0,
          kvCacheUsage: this.#meanKvUsage(),
          ...(RECOVERY_COUNTERS.some((k) => stepRecovery[k] > 0) && { stepRecovery }),
        });
        if (cache) {
          const last = this.#cacheStats.get(id);
          // A restarted replica counts from zero again: what it had counted stays in the totals.
          if (last && (cache.hits < last.hits || cache.misses < last.misses || cache.evictions < last.evictions))
            this.#keepCounters(last);
          this.#cacheStats.set(id, cache);
          this.events.emit('cache.stats', { name: 'prefix', model, ...this.cacheTotals() });
        }
        for (const s of steps) {
          this.events.emit('engine.steps', {
            model,
            phase: s.phase,
            steps: s.steps,
            sequences: s.steps > 0 ? s.sequences / s.steps : 0,
            tokens: s.tokens,
            durationMs: s.durationMs,
          });
        }
      },
    };
  }

  /**
   * The prefix caches of the replicas taken together: sizes of those running now, counters since the model started
   * (those of retired and restarted replicas included).
   */
  cacheTotals(): Omit<PrefixCacheStats, 'released'> {
    const live = this.#live();
    const total = { ...this.#cacheBase, bytes: 0, capacityBytes: 0, entries: 0 };
    for (const [id, c] of this.#cacheStats) {
      if (!live.has(id)) {
        this.#keepCounters(c);
        this.#cacheStats.delete(id);
        continue;
      }
      for (const k of Object.keys(total) as (keyof typeof total)[]) total[k] += c[k];
    }
    return total;
  }

  /** The step-recovery counters of the replicas taken together, since the model started. */
  recoveryTotals(): StepRecovery {
    return this.#recovery.totals(this.#live());
  }

  // The model's replicas are alike, so its use is theirs on average (retired replicas forgotten).
  #meanKvUsage(): number {
    const live = this.#live();
    let sum = 0;
    for (const id of this.#kvUsage.keys()) {
      if (live.has(id)) sum += this.#kvUsage.get(id)!;
      else this.#kvUsage.delete(id);
    }
    return this.#kvUsage.size > 0 ? sum / this.#kvUsage.size : 0;
  }

  #live(): Set<number> {
    return new Set((this.replicas()?.all ?? []).map((w) => w.id));
  }

  #keepCounters(gone: PrefixCacheStats): void {
    this.#cacheBase.hits += gone.hits;
    this.#cacheBase.misses += gone.misses;
    this.#cacheBase.evictions += gone.evictions;
  }

  // A replica's speculation totals as `spec.acceptance` events of what changed; a new worker starts from zero.
  #speculation(replica: number, totals: SpeculationStats): void {
    const last = this.#specTotals.get(replica);
    const since =
      last && totals.drafts >= last.drafts ? last : { drafts: 0, draftTokens: 0, acceptedTokens: 0, pauses: 0 };
    const speedup = speedupFactor(totals);
    this.#specTotals.set(replica, totals);
    this.events.emit('spec.acceptance', {
      model: this.model,
      method: this.method(),
      drafts: totals.drafts - since.drafts,
      proposedTokens: totals.draftTokens - since.draftTokens,
      acceptedTokens: totals.acceptedTokens - since.acceptedTokens,
      ...(totals.pauses > since.pauses && { pauses: totals.pauses - since.pauses }),
      ...(speedup !== undefined && { speedup }),
    });
  }
}
