// The heartbeat of a worker child process: one line per beat, the process's resident set size in bytes, written to
// a pipe the main process reads. It runs in its own thread, so it keeps beating while ORT blocks the process's main
// thread in a run, and stops only when the whole process stops (SIGSTOP, a deadlock in the runtime, a crash).
import { writeSync } from 'node:fs';
import { workerData } from 'node:worker_threads';

const { fd, intervalMs } = workerData as { fd: number; intervalMs: number };

function beat(): void {
  try {
    writeSync(fd, `${process.memoryUsage.rss()}\n`);
  } catch {
    // A full or closed pipe: the main process is not reading, or is gone; the next beat tries again.
  }
}

beat();
setInterval(beat, intervalMs);
