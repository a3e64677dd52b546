import type { SchedulerStrategy, WorkerLoad } from '@nucleus/sdk';

function healthyIndices(workers: readonly WorkerLoad[]): number[] {
  return workers.flatMap((w, i) => (w.healthy ? [i] : []));
}

/** Each healthy worker in turn. */
export function roundRobin(): SchedulerStrategy {
  let next = 0;
  return {
    name: 'round-robin',
    pickWorker(workers) {
      const healthy = healthyIndices(workers);
      if (!healthy.length) return -1;
      return healthy[next++ % healthy.length]!;
    },
  };
}

/** The healthy worker with the fewest active batches, then the fewest requests in flight. */
export const leastLoaded: SchedulerStrategy = {
  name: 'least-loaded',
  pickWorker(workers) {
    let best = -1;
    for (const i of healthyIndices(workers)) {
      const w = workers[i]!;
      const b = best < 0 ? undefined : workers[best]!;
      if (!b || w.activeBatches < b.activeBatches || (w.activeBatches === b.activeBatches && w.inflight < b.inflight)) best = i;
    }
    return best;
  },
};

/**
 * Among healthy workers whose free memory holds the request's estimated batch memory, the least
 * loaded; -1 when none has room, so the caller waits or sheds instead of running out of memory.
 */
export const memoryAware: SchedulerStrategy = {
  name: 'memory-aware',
  pickWorker(workers, request) {
    const fits = workers.map((w) => ({ ...w, healthy: w.healthy && (w.freeMemoryBytes ?? Infinity) >= request.estimatedBytes }));
    return leastLoaded.pickWorker!(fits, request);
  },
};
