import type { ReplicaRouter, WorkerLoad } from '@nucleus/sdk';

function healthyIndices(workers: readonly WorkerLoad[]): number[] {
  return workers.flatMap((w, i) => (w.healthy ? [i] : []));
}

/** Each healthy worker in turn. */
export function roundRobin(): ReplicaRouter {
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
export const leastLoaded: ReplicaRouter = {
  name: 'least-loaded',
  pickWorker(workers) {
    let best = -1;
    for (const i of healthyIndices(workers)) {
      const w = workers[i]!;
      const b = best < 0 ? undefined : workers[best]!;
      if (!b || w.activeBatches < b.activeBatches || (w.activeBatches === b.activeBatches && w.inflight < b.inflight))
        best = i;
    }
    return best;
  },
};

/**
 * Among healthy workers whose free memory holds the request's estimated batch memory, the least
 * loaded; -1 when none has room, so the caller waits or sheds instead of running out of memory.
 */
export const memoryAware: ReplicaRouter = {
  name: 'memory-aware',
  pickWorker(workers, request) {
    const fits = workers.map((w) => ({
      ...w,
      healthy: w.healthy && (w.freeMemoryBytes ?? Infinity) >= request.estimatedBytes,
    }));
    return leastLoaded.pickWorker(fits, request);
  },
};

// A request whose worker has more than this many sequences beyond the least loaded one (plus as many again as that
// one has) goes to the least loaded instead: a cache hit does not pay for waiting behind a long queue.
const AFFINITY_SLACK = 4;

/**
 * Requests with one `affinityKey` (a conversation, or prompts that begin alike) to one worker, so its prefix cache
 * holds what they share: rendezvous hashing of the key over the healthy workers that have room, which moves only
 * the keys of a worker that leaves or joins. A worker much busier than the least loaded one is passed over; a
 * request without a key goes to the least loaded.
 */
export const prefixAffinity: ReplicaRouter = {
  name: 'prefix-affinity',
  pickWorker(workers, request) {
    const fits = workers.map((w) => ({
      ...w,
      healthy: w.healthy && (w.freeMemoryBytes ?? Infinity) >= request.estimatedBytes,
    }));
    const least = leastLoaded.pickWorker(fits, request);
    if (least < 0 || request.affinityKey === undefined) return least;
    let best = -1;
    let bestScore = -1;
    for (const i of healthyIndices(fits)) {
      const score = fnv1a(`${request.affinityKey}\u0000${workers[i]!.id}`);
      if (score > bestScore) [best, bestScore] = [i, score];
    }
    const min = workers[least]!.activeBatches;
    return workers[best]!.activeBatches > min * 2 + AFFINITY_SLACK ? least : best;
  },
};

// 32-bit FNV-1a: spreads short keys well enough for choosing among a few workers.
function fnv1a(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}
