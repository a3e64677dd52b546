import { readdirSync } from 'node:fs';
import { getPriority, setPriority } from 'node:os';

/**
 * The ids of this process's threads other than the main one, where the OS lists them (Linux). Taken before a
 * process starts threads of its own, they are the runtime's helpers: V8's garbage-collection and compiler threads and
 * libuv's pool.
 *
 * A worker process lowers them with itself: they collect its garbage, and at the server's priority that collection
 * would take the CPU the worker's niceness leaves the server. The server process keeps its own at its priority: they
 * collect the main thread's garbage too, and a main thread whose collection waits for a helper preempted by the
 * inference threads answers late (a ResNet JSON load took /health p99 from 47 to 119 ms when they were lowered).
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
