/** Latency and throughput of one measured run. */
export interface RunStats {
  /** Completed operations (requests or items) per second. */
  throughput: number;
  p50Ms: number;
  p99Ms: number;
  count: number;
  errors: number;
  seconds: number;
}

/** The q-quantile (0..1) of `values`, by nearest rank. */
export function quantile(values: readonly number[], q: number): number {
  if (!values.length) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

/** Summarises latencies (ms) of `items` completed operations over `seconds`. */
export function summarise(
  latenciesMs: readonly number[],
  seconds: number,
  items = latenciesMs.length,
  errors = 0,
): RunStats {
  return {
    throughput: items / seconds,
    p50Ms: quantile(latenciesMs, 0.5),
    p99Ms: quantile(latenciesMs, 0.99),
    count: latenciesMs.length,
    errors,
    seconds,
  };
}

/** Calls `op` back to back for `seconds` (after `warmup` calls) and measures each call. */
export async function timeLoop(
  op: () => Promise<unknown>,
  seconds: number,
  warmup = 3,
  itemsPerOp = 1,
): Promise<RunStats> {
  for (let i = 0; i < warmup; i++) await op();
  const latencies: number[] = [];
  const start = performance.now();
  const end = start + seconds * 1000;
  while (performance.now() < end) {
    const t = performance.now();
    await op();
    latencies.push(performance.now() - t);
  }
  const elapsed = (performance.now() - start) / 1000;
  return summarise(latencies, elapsed, latencies.length * itemsPerOp);
}

/** Runs `clients` closed-loop clients calling `op` for `seconds`; an op that throws or returns false is an error. */
export async function closedLoop(op: () => Promise<boolean>, clients: number, seconds: number): Promise<RunStats> {
  const latencies: number[] = [];
  let errors = 0;
  const start = performance.now();
  const end = start + seconds * 1000;
  await Promise.all(
    Array.from({ length: clients }, async () => {
      while (performance.now() < end) {
        const t = performance.now();
        let ok = false;
        try {
          ok = await op();
        } catch {
          ok = false;
        }
        if (ok) latencies.push(performance.now() - t);
        else errors++;
      }
    }),
  );
  return summarise(latencies, (performance.now() - start) / 1000, latencies.length, errors);
}
