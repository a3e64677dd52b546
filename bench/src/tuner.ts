// The tuner suite: a step load (few clients, then many) on a small tabular model, served with static batching and
// with the tuner on, measuring p99 and throughput in each phase after the same settling time. The static batching is
// sized for a heavier load than either phase brings (batches that never fill, so each request waits out the queue
// delay): the setting the tuner is there to correct. The project's default batching runs as a reference.
import { availableParallelism, loadavg } from 'node:os';
import { machineInfo } from './machine.js';
import { record, type ResultRow, type ResultTable } from './report.js';
import { startServerProcess, type ServerProcess } from './server-process.js';
import { closedLoop, type RunStats } from './stats.js';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const SETTLE_SECONDS = Number(process.env.BENCH_TUNER_SETTLE_SECONDS ?? SECONDS);
const TARGET_P99_MS = Number(process.env.BENCH_TUNER_TARGET_MS ?? 5);
const MODEL = 'tabular-classifier';
const LOW = 2;
const HIGH = 32;
const OVERSIZED = { maxBatchSize: 64, maxQueueDelayMs: 10 };

// The prediction cache would answer the repeated body without running the model.
const BASE = ['--set', 'plugins.disabled=tracing,alerts,prediction-cache'];
const set = (settings: Record<string, unknown>): string[] =>
  Object.entries(settings).flatMap(([key, value]) => ['--set', `${key}=${String(value)}`]);
const STATIC = [
  ...BASE,
  ...set({
    'batching.maxBatchSize': OVERSIZED.maxBatchSize,
    'batching.maxQueueDelayMs': OVERSIZED.maxQueueDelayMs,
  }),
];
const TUNED = [
  ...STATIC,
  ...set({
    'tuning.enabled': true,
    'tuning.targetP99Ms': TARGET_P99_MS,
    // Several judgements per settling period, each on enough requests even at the low load.
    'tuning.intervalMs': Math.max(250, Math.round((SETTLE_SECONDS * 1000) / 20)),
    'tuning.minSamples': 10,
    'tuning.bounds.maxBatchSize.min': 8,
  }),
];

const BODY = JSON.stringify({
  inputs: [{ name: 'features', shape: [1, 8], datatype: 'FP32', data: [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8] }],
});

async function post(url: string): Promise<boolean> {
  const res = await fetch(url, { method: 'POST', body: BODY, headers: { 'content-type': 'application/json' } });
  await res.arrayBuffer();
  return res.ok;
}

/** One measured phase: the clients' view, the server's p99 (queue plus compute, what the tuner aims at) and the knobs. */
interface Phase {
  client: RunStats;
  serverP99Ms: number | null;
  batching: string;
}

async function phase(server: ServerProcess, clients: number): Promise<Phase> {
  const url = `${server.url}/v2/models/${MODEL}/infer`;
  await closedLoop(() => post(url), clients, SETTLE_SECONDS);
  const client = await closedLoop(() => post(url), clients, SECONDS);
  const latency = (await (
    await fetch(`${server.url}/server/stats/latency?model=${MODEL}&window=${Math.max(1, Math.floor(SECONDS))}`)
  ).json()) as { latency?: { p99: number | null } };
  const status = (await (await fetch(`${server.url}/status`)).json()) as {
    models: Array<{ name: string; versions: Array<{ batching?: { maxBatchSize: number; maxQueueDelayMs: number } }> }>;
  };
  const b = status.models.find((m) => m.name === MODEL)?.versions[0]?.batching;
  return {
    client,
    serverP99Ms: latency.latency?.p99 ?? null,
    batching: b ? `maxBatchSize ${b.maxBatchSize}, maxQueueDelayMs ${b.maxQueueDelayMs}` : '?',
  };
}

/** Low load, then the step up; each phase settles (unmeasured) before it is measured. */
async function stepLoad(args: string[]): Promise<{ low: Phase; high: Phase; decisions: string }> {
  const server = await startServerProcess(args);
  try {
    await post(`${server.url}/v2/models/${MODEL}/infer`);
    const low = await phase(server, LOW);
    const high = await phase(server, HIGH);
    const tuning = (await (await fetch(`${server.url}/server/tuning`)).json()) as {
      decisions: Array<{ knob: string; previous: number; value: number }>;
    };
    const moves = tuning.decisions.map((d) => `${d.knob} ${d.previous}→${d.value}`);
    const decisions =
      moves.length > 24 ? `${moves.slice(0, 24).join(', ')} and ${moves.length - 24} more` : moves.join(', ');
    return { low, high, decisions };
  } finally {
    await server.stop();
  }
}

function note(p: Phase): string {
  const p99 = p.serverP99Ms === null ? '–' : p.serverP99Ms.toFixed(2);
  const met = p.serverP99Ms !== null && p.serverP99Ms <= TARGET_P99_MS ? 'met' : 'missed';
  return `server p99 ${p99} ms, target ${met}; ${p.batching}`;
}

/** The tuner suite: static batching against the tuner, under the same step load. */
export async function tunerSuite(): Promise<string> {
  const notes = [
    `Load average when the suite started: ${loadavg()
      .map((l) => l.toFixed(1))
      .join(', ')} (1, 5, 15 min).`,
    `${MODEL}, KServe v2 JSON, closed loop: ${LOW} clients, then ${HIGH}; each phase ${SETTLE_SECONDS} s unmeasured (settling, BENCH_TUNER_SETTLE_SECONDS) and ${SECONDS} s measured (BENCH_SECONDS).`,
    `Static and tuned servers both start from batching sized for a heavier load (maxBatchSize ${OVERSIZED.maxBatchSize}, maxQueueDelayMs ${OVERSIZED.maxQueueDelayMs}): batches never fill at ${HIGH} clients, so each request waits out the delay. The tuner aims at a server-side p99 (queue plus compute) of ${TARGET_P99_MS} ms (BENCH_TUNER_TARGET_MS), within maxBatchSize 8 to 64 and maxQueueDelayMs 0 to 20.`,
    '"server p99" is the model\'s queue-plus-compute p99 over the measured phase (GET /server/stats/latency), the figure the target is for; p50 and p99 in the table are the clients\', HTTP included.',
  ];
  if (loadavg()[0]! > availableParallelism())
    notes.push(
      'The load average was above the core count: other processes took much of the CPU, so these figures say little about the tuner; rerun on a quiet machine.',
    );
  const reference = await stepLoad(BASE);
  const fixed = await stepLoad(STATIC);
  const tuned = await stepLoad(TUNED);
  notes.push(`The tuner's decisions, in order: ${tuned.decisions || 'none'}.`);
  const rows: ResultRow[] = [
    {
      label: `project default batching (32, 2 ms), ${LOW} clients`,
      stats: reference.low.client,
      note: note(reference.low),
    },
    {
      label: `project default batching (32, 2 ms), ${HIGH} clients`,
      stats: reference.high.client,
      note: note(reference.high),
    },
    { label: `static (64, 10 ms), ${LOW} clients`, stats: fixed.low.client, ratio: 1, note: note(fixed.low) },
    {
      label: `static (64, 10 ms), ${HIGH} clients (after the step)`,
      stats: fixed.high.client,
      ratio: 1,
      note: note(fixed.high),
    },
    {
      label: `tuner from (64, 10 ms), ${LOW} clients`,
      stats: tuned.low.client,
      ratio: tuned.low.client.throughput / fixed.low.client.throughput,
      note: note(tuned.low),
    },
    {
      label: `tuner from (64, 10 ms), ${HIGH} clients (after the step)`,
      stats: tuned.high.client,
      ratio: tuned.high.client.throughput / fixed.high.client.throughput,
      note: note(tuned.high),
    },
  ];
  const table: ResultTable = {
    title: `Step load: static batching against the tuner (p99 target ${TARGET_P99_MS} ms)`,
    unit: 'requests',
    rows,
  };
  return record('tuner', machineInfo(), [table], notes);
}
