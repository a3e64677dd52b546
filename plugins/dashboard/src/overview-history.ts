import type { NucleusEvents, StatsSnapshot } from '@nucleus/sdk';

/** One point of the overview's time series: what a stats snapshot said, and what the dashboard counted since. */
export interface OverviewSample {
  /** Milliseconds since the epoch. */
  t: number;
  requestsPerS: number;
  tokensPerS: number;
  latencyMs: { p50: number | null; p95: number | null; p99: number | null };
  /** Time to first token of the slowest model at each percentile. */
  ttftMs: { p50: number | null; p95: number | null; p99: number | null };
  queueDepth: number;
  inFlight: number;
  /** Requests refused since the previous sample, per second, by status: overloaded, timed out, rate-limited. */
  rejectedPerS: { '503': number; '408': number; '429': number };
  /** Other 5xx answers since the previous sample, per second. */
  errorsPerS: number;
  cpuPercent: number;
  rssBytes: number;
  heapUsedBytes: number;
  /** Device memory in use over every reported device; absent where no device reports. */
  gpuUsedBytes?: number;
}

const REJECTIONS = [503, 408, 429] as const;

function maxOf(values: Array<number | null>): number | null {
  let best: number | null = null;
  for (const v of values) if (v !== null && (best === null || v > best)) best = v;
  return best;
}

/**
 * The overview's recent past on the server: a sample per stats snapshot, kept for `historyS` seconds, so a page
 * opened now draws the last minutes at once and only appends what `/ws` brings from then on.
 */
export class OverviewHistory {
  private readonly samples: OverviewSample[] = [];
  private counts = { '503': 0, '408': 0, '429': 0, errors: 0 };
  private countedSince = Date.now();

  constructor(private readonly historyS: number) {}

  /** Counts an answered request toward the next sample. */
  onRequestEnd(end: NucleusEvents['request.end']): void {
    const status = end.status;
    if ((REJECTIONS as readonly number[]).includes(status)) this.counts[String(status) as '503']++;
    else if (status >= 500) this.counts.errors++;
  }

  /** Turns a stats snapshot and the counts since the last one into a sample, keeps it, and returns it. */
  add(snapshot: StatsSnapshot, now = Date.now()): OverviewSample {
    const seconds = Math.max(0.001, (now - this.countedSince) / 1000);
    const rate = (n: number) => Math.round((n / seconds) * 100) / 100;
    const devices = snapshot.devices ?? [];
    const sample: OverviewSample = {
      t: now,
      requestsPerS: snapshot.throughput.requestsPerS,
      tokensPerS: snapshot.throughput.generatedTokensPerS,
      latencyMs: {
        p50: snapshot.requests.latency.p50,
        p95: snapshot.requests.latency.p95,
        p99: snapshot.requests.latency.p99,
      },
      ttftMs: {
        p50: maxOf(snapshot.models.map((m) => m.ttft.p50)),
        p95: maxOf(snapshot.models.map((m) => m.ttft.p95)),
        p99: maxOf(snapshot.models.map((m) => m.ttft.p99)),
      },
      queueDepth: snapshot.queues.reduce((n, q) => n + q.depth, 0),
      inFlight: snapshot.requests.inFlight,
      rejectedPerS: {
        '503': rate(this.counts['503']),
        '408': rate(this.counts['408']),
        '429': rate(this.counts['429']),
      },
      errorsPerS: rate(this.counts.errors),
      cpuPercent: snapshot.process.cpuPercent,
      rssBytes: snapshot.process.rssBytes,
      heapUsedBytes: snapshot.process.heapUsedBytes,
      ...(devices.length > 0 && { gpuUsedBytes: devices.reduce((n, d) => n + d.memoryUsedBytes, 0) }),
    };
    this.counts = { '503': 0, '408': 0, '429': 0, errors: 0 };
    this.countedSince = now;
    this.samples.push(sample);
    const oldest = now - this.historyS * 1000;
    let drop = 0;
    while (drop < this.samples.length && this.samples[drop]!.t < oldest) drop++;
    if (drop > 0) this.samples.splice(0, drop);
    return sample;
  }

  /** The samples kept, oldest first. */
  list(): readonly OverviewSample[] {
    return this.samples;
  }
}
