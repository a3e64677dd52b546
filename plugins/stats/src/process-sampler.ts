import { performance } from 'node:perf_hooks';

/** What {@link ProcessSampler} last measured. */
export interface ProcessSample {
  rssBytes: number;
  heapUsedBytes: number;
  /** CPU time this process used over the last interval, as a percentage of one core (may exceed 100 with worker threads). */
  cpuPercent: number;
  /** How late the last sampling timer fired: the event loop's delay at that moment. */
  eventLoopLagMs: number;
}

/** Measures the process's CPU share and event-loop delay on a fixed interval; memory is read when asked. */
export class ProcessSampler {
  private readonly timer: NodeJS.Timeout;
  private lastCpu = process.cpuUsage();
  private lastAt = performance.now();
  private cpuPercent = 0;
  private lagMs = 0;

  constructor(private readonly intervalMs: number) {
    this.timer = setInterval(() => this.tick(), intervalMs).unref();
  }

  /** The latest CPU and event-loop figures with the current memory use. */
  sample(): ProcessSample {
    const mem = process.memoryUsage();
    return { rssBytes: mem.rss, heapUsedBytes: mem.heapUsed, cpuPercent: this.cpuPercent, eventLoopLagMs: this.lagMs };
  }

  /** Stops measuring. */
  close(): void {
    clearInterval(this.timer);
  }

  private tick(): void {
    const now = performance.now();
    const cpu = process.cpuUsage(this.lastCpu);
    const elapsedUs = (now - this.lastAt) * 1000;
    this.cpuPercent = elapsedUs > 0 ? Math.round(((cpu.user + cpu.system) / elapsedUs) * 1000) / 10 : 0;
    this.lagMs = Math.max(0, Math.round((now - this.lastAt - this.intervalMs) * 100) / 100);
    this.lastCpu = process.cpuUsage();
    this.lastAt = now;
  }
}
