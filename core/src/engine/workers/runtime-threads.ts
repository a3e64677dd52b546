import { readdirSync } from 'node:fs';
import { getPriority, setPriority } from 'node:os';

/**
 * The ids of this process's threads other than the main one, where the OS lists them (Linux). Taken before a
 * process starts threads of its own, they are the runtime's helpers: V8's garbage-collection and compiler threads and
 * libuv's pool.
 *
 * V8's helpers do the concurrent and parallel garbage collection of every isolate in the process, the worker threads'
 * included, and they start at the priority of the thread that started the process. Left there, the collection of a
 * worker's garbage takes the CPU from the main thread (which relays tokens and answers /health) that the worker's own
 * lower priority was meant to leave it.
 */
export function runtimeHelperThreads(): number[] {
  try {
    return readdirSync('/proc/self/task')
      .map(Number)
      .filter((tid) => Number.isInteger(tid) && tid !== process.pid);
  } catch {
    return [];
  }
}

/**
 * Lowers each of these threads to `niceness` (0–19) where it runs at a higher priority now (on Linux niceness is per
 * thread). A thread that has ended, or a change the OS refuses, is skipped. Returns how many were lowered.
 */
export function lowerThreads(tids: readonly number[], niceness: number): number {
  const target = Math.min(19, niceness);
  let lowered = 0;
  for (const tid of tids) {
    try {
      if (getPriority(tid) >= target) continue;
      setPriority(tid, target);
      lowered++;
    } catch {
      // Gone, or not permitted: it keeps its priority.
    }
  }
  return lowered;
}
